//! Which SIMD kernels the integer network runs: decided once per process, from the CPU
//! and the `S2SFS_KERNELS` switch, in this one place. Every set gives the same integers
//! (the portable code is their definition); the switch exists to measure and test each
//! set on one machine.
//!
//! - `auto` (or unset, or empty): the best set this CPU has.
//! - `avx512`: AVX-512 VNNI products (`vnni`) and the AVX-512 builds of the per-token
//!   loops (`t5::multiversion`); needs AVX-512 F, BW, VL, DQ and VNNI.
//! - `avx2`: AVX2 products (`avx2`); the per-token loops run their baseline build.
//! - `portable`: no SIMD beyond the baseline x86-64 (or any other) target.
//!
//! The older `S2SFS_PORTABLE_KERNELS` (any value) still means `portable` when
//! `S2SFS_KERNELS` is unset.
//!
//! A set this CPU lacks, or a value that names none, is an error (`selected`, which model
//! loading can report); the kernels themselves never run an instruction the CPU lacks:
//! they log the error once and run the best set the CPU has.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that picks the kernels.
pub const ENV: &str = "S2SFS_KERNELS";
/// The older switch: set (to anything) and `S2SFS_KERNELS` unset means `portable`.
pub const LEGACY_PORTABLE_ENV: &str = "S2SFS_PORTABLE_KERNELS";

/// A set of kernels, in order of speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernels {
    Portable,
    Avx2,
    Avx512,
}

impl Kernels {
    /// Every set, slowest first.
    pub const ALL: [Kernels; 3] = [Kernels::Portable, Kernels::Avx2, Kernels::Avx512];

    /// The set's name, as `S2SFS_KERNELS` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            Kernels::Avx2 => "avx2",
            Kernels::Avx512 => "avx512",
        }
    }

    /// The CPU features the set needs, in words.
    pub fn needs(self) -> &'static str {
        match self {
            Kernels::Portable => "nothing",
            Kernels::Avx2 => "AVX2",
            Kernels::Avx512 => "AVX-512 F, BW, VL, DQ and VNNI",
        }
    }

    /// The set `S2SFS_KERNELS` names by `value` (`None` for `auto` and unknown names).
    pub fn parse(value: &str) -> Option<Kernels> {
        Kernels::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(value.trim()))
    }

    /// Whether this CPU has the features the set needs (detected once).
    pub fn supported(self) -> bool {
        match self {
            Kernels::Portable => true,
            Kernels::Avx2 => cpu().avx2,
            Kernels::Avx512 => cpu().avx512,
        }
    }

    /// The fastest set this CPU has.
    pub fn best() -> Kernels {
        best_of(Kernels::supported)
    }

    /// Every set this CPU has, slowest first (portable always).
    #[cfg(test)]
    pub fn available() -> impl Iterator<Item = Kernels> {
        Kernels::ALL.into_iter().filter(|k| k.supported())
    }
}

impl fmt::Display for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a setting of `S2SFS_KERNELS` cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelsError {
    #[error("{ENV}={value:?} is not one of auto, avx512, avx2, portable")]
    Unknown { value: String },
    #[error(
        "{ENV}={asked}: this CPU lacks {needs}, which the {asked} kernels need (it can run {best})",
        needs = asked.needs()
    )]
    Unsupported { asked: Kernels, best: Kernels },
}

/// The set a setting asks for, on a CPU that has the sets `supported` says it has: `None`,
/// empty or `auto` is the best of them; a named set must be one of them. A pure function
/// of its arguments, for tests.
pub fn choose(setting: Option<&str>, supported: impl Fn(Kernels) -> bool) -> Result<Kernels, KernelsError> {
    let best = best_of(&supported);
    let value = match setting.map(str::trim) {
        None | Some("") => return Ok(best),
        Some(v) if v.eq_ignore_ascii_case("auto") => return Ok(best),
        Some(v) => v,
    };
    let asked = Kernels::parse(value).ok_or_else(|| KernelsError::Unknown { value: value.to_owned() })?;
    if supported(asked) { Ok(asked) } else { Err(KernelsError::Unsupported { asked, best }) }
}

fn best_of(supported: impl Fn(Kernels) -> bool) -> Kernels {
    Kernels::ALL.into_iter().rev().find(|&k| supported(k)).unwrap_or(Kernels::Portable)
}

/// What this process's environment asks for, checked against this CPU (read once), for
/// model loading to report; the kernels run `kernels()` either way.
pub fn selected() -> Result<Kernels, KernelsError> {
    decision().0.clone()
}

/// The kernels this thread runs: `selected()`, or where that is an error the best set
/// this CPU has (the error is logged once). Tests may override it per thread
/// (`with_kernels`).
#[inline]
pub fn kernels() -> Kernels {
    #[cfg(test)]
    if let Some(k) = OVERRIDE.with(std::cell::Cell::get) {
        return k;
    }
    let (chosen, runs) = decision();
    if let Err(e) = chosen {
        // Only where kernels run despite the error (model loading refuses it first).
        static LOGGED: std::sync::Once = std::sync::Once::new();
        LOGGED.call_once(|| log::error!("{e}; running the {runs} kernels"));
    }
    *runs
}

/// The setting's result, and the set that runs.
fn decision() -> &'static (Result<Kernels, KernelsError>, Kernels) {
    static DECISION: OnceLock<(Result<Kernels, KernelsError>, Kernels)> = OnceLock::new();
    DECISION.get_or_init(|| {
        let setting = match std::env::var(ENV) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotUnicode(v)) => Some(v.to_string_lossy().into_owned()),
            Err(std::env::VarError::NotPresent) => {
                std::env::var_os(LEGACY_PORTABLE_ENV).map(|_| Kernels::Portable.name().to_owned())
            }
        };
        let chosen = choose(setting.as_deref(), Kernels::supported);
        let runs = *chosen.as_ref().unwrap_or(&Kernels::best());
        (chosen, runs)
    })
}

#[derive(Debug, Clone, Copy)]
struct Cpu {
    avx2: bool,
    avx512: bool,
}

fn cpu() -> Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    *CPU.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            Cpu {
                avx2: is_x86_feature_detected!("avx2"),
                avx512: is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Cpu { avx2: false, avx512: false }
        }
    })
}

#[cfg(test)]
thread_local! {
    static OVERRIDE: std::cell::Cell<Option<Kernels>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with this thread on the kernels `k` (other threads, rayon's included, keep
/// theirs): how tests run every set in one process without touching the environment.
/// Panics if the CPU lacks `k`.
#[cfg(test)]
pub fn with_kernels<R>(k: Kernels, f: impl FnOnce() -> R) -> R {
    assert!(k.supported(), "this CPU lacks {}, which the {k} kernels need", k.needs());
    struct Restore(Option<Kernels>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(k))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_choose_a_supported_set_or_say_why_not() {
        let all = |_: Kernels| true;
        let avx2_cpu = |k: Kernels| k <= Kernels::Avx2;
        let old_cpu = |k: Kernels| k == Kernels::Portable;
        for setting in [None, Some(""), Some("auto"), Some(" AUTO ")] {
            assert_eq!(choose(setting, all), Ok(Kernels::Avx512));
            assert_eq!(choose(setting, avx2_cpu), Ok(Kernels::Avx2));
            assert_eq!(choose(setting, old_cpu), Ok(Kernels::Portable));
        }
        for k in Kernels::ALL {
            assert_eq!(choose(Some(k.name()), all), Ok(k));
            assert_eq!(choose(Some(k.name()), old_cpu).is_ok(), k == Kernels::Portable);
        }
        assert_eq!(choose(Some("avx2"), avx2_cpu), Ok(Kernels::Avx2));
        let err = choose(Some("avx512"), avx2_cpu).unwrap_err();
        assert_eq!(err, KernelsError::Unsupported { asked: Kernels::Avx512, best: Kernels::Avx2 });
        assert_eq!(
            err.to_string(),
            "S2SFS_KERNELS=avx512: this CPU lacks AVX-512 F, BW, VL, DQ and VNNI, which the \
             avx512 kernels need (it can run avx2)"
        );
        let err = choose(Some("sse"), all).unwrap_err();
        assert_eq!(err.to_string(), "S2SFS_KERNELS=\"sse\" is not one of auto, avx512, avx2, portable");
    }

    #[test]
    fn the_override_is_per_thread_and_restored() {
        let outside = kernels();
        for k in Kernels::available() {
            with_kernels(k, || {
                assert_eq!(kernels(), k);
                assert_eq!(std::thread::spawn(kernels).join().unwrap(), outside);
            });
            assert_eq!(kernels(), outside);
        }
        assert!(Kernels::available().any(|k| k == Kernels::Portable));
        assert_eq!(Kernels::available().last(), Some(Kernels::best()));
    }
}
