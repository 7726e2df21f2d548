//! Functions compiled twice: for the baseline x86-64 CPU, and for AVX-512 where the CPU
//! has it (the same switch as the int8 kernels, so `S2SFS_PORTABLE_KERNELS` forces the
//! baseline for tests). The coder's per-token loops (exp-table lookups, rescaling with
//! 64-bit products) vectorize only with AVX-512's gathers and wide multiplies. Integer
//! code: both builds give the same results.

/// `multiversion! { fn name(arg: Type, ...) -> Ret { body } }` defines `name` as above.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            if $crate::t5::intnet::avx512_available() {
                // SAFETY: avx512_available checked that the CPU has AVX-512 F, BW, VL and DQ.
                return unsafe { avx512($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
