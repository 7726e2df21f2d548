//! Functions compiled three times: for the baseline x86-64 CPU, for AVX2 and for AVX-512,
//! each used where the thread runs that kernel set (`kernels`, so `S2SFS_KERNELS` picks
//! these too and every build is tested on one machine). The coder's per-token loops
//! (exp-table lookups, rescaling with 64-bit products, requantizing) vectorize only with
//! gathers and wide registers, which the baseline lacks. Integer code: every build gives
//! the same results.

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
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            match $crate::t5::intnet::kernels() {
                // SAFETY: `kernels` runs a set only where the CPU has it: AVX-512 F, BW,
                // VL and DQ for the first, AVX2 for the second.
                $crate::t5::intnet::Kernels::Avx512 => return unsafe { avx512($($arg),*) },
                $crate::t5::intnet::Kernels::Avx2 => return unsafe { avx2($($arg),*) },
                $crate::t5::intnet::Kernels::Portable => {}
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
