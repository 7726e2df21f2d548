//! Operations s2sfs does not implement. fuser's defaults answer them with ENOSYS and log
//! a warning on every call; the kernel stops asking after one ENOSYS for most of them,
//! but not for ioctl, which every Python `open()` (an isatty check) sends: a log line per
//! open. Here each kind is logged once per mount, and ioctl is answered ENOTTY, what
//! ext4 answers for an ioctl it does not know.

use std::sync::atomic::{AtomicBool, Ordering};

/// The operations answered here, in the order of `Unsupported::seen`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Ioctl,
    Poll,
    Fallocate,
    Lseek,
    CopyFileRange,
    Bmap,
    Getlk,
    Setlk,
}

const OPS: usize = 8;

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Ioctl => "ioctl",
            Op::Poll => "poll",
            Op::Fallocate => "fallocate",
            Op::Lseek => "lseek (SEEK_DATA/SEEK_HOLE)",
            Op::CopyFileRange => "copy_file_range",
            Op::Bmap => "bmap",
            Op::Getlk => "getlk",
            Op::Setlk => "setlk",
        }
    }

    /// What the kernel is told: ENOSYS makes it fall back on its generic code (and stop
    /// asking), except for ioctl.
    pub(crate) fn errno(self) -> i32 {
        match self {
            Op::Ioctl => libc::ENOTTY,
            _ => libc::ENOSYS,
        }
    }
}

/// Which kinds have been logged.
#[derive(Default)]
pub(crate) struct Unsupported {
    seen: [AtomicBool; OPS],
}

impl Unsupported {
    /// Logs the first call of `op`'s kind; returns the errno to answer it with.
    pub(crate) fn answer(&self, op: Op) -> i32 {
        if !self.seen[op as usize].swap(true, Ordering::Relaxed) {
            log::info!(
                "{} is not implemented by s2sfs: answered {} (logged once per mount)",
                op.name(),
                std::io::Error::from_raw_os_error(op.errno())
            );
        }
        op.errno()
    }

    #[cfg(test)]
    fn logged(&self, op: Op) -> bool {
        self.seen[op as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_noted_once_and_ioctl_is_not_a_tty() {
        let u = Unsupported::default();
        assert!(!u.logged(Op::Ioctl));
        assert_eq!(u.answer(Op::Ioctl), libc::ENOTTY);
        assert!(u.logged(Op::Ioctl) && !u.logged(Op::Setlk));
        assert_eq!(u.answer(Op::Ioctl), libc::ENOTTY);
        assert_eq!(u.answer(Op::Setlk), libc::ENOSYS);
        assert!(u.logged(Op::Setlk));
    }
}
