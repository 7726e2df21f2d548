//! The `-o` mount options a user may pass: those for FUSE, the access-time ones for the
//! volume, and the fixed ones s2sfs adds.

use fuser::{Config, MountOption, SessionACL};

use super::error::CommandError;
use crate::volume::{AtimeOptions, AtimeUpdate};

/// The options users may give with `-o`, for the error message.
const KNOWN: &str = "allow_other, allow_root, ro, rw, exec, noexec, suid, nosuid, dev, nodev, \
                     relatime, strictatime, atime, noatime, diratime, nodiratime, sync, async, \
                     dirsync, default_permissions";

/// User options parsed from `-o a,b,c` (several `-o` add up). Later options override
/// earlier ones of the same pair (`ro,rw` is rw), as with mount(8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserOptions {
    pub(crate) acl: SessionACL,
    /// Kernel flags, at most one of each pair, in first-seen order.
    pub(crate) flags: Vec<MountOption>,
    /// The access-time options as given; [`UserOptions::atime`] is what the volume gets.
    atime: AtimeOptions,
}

impl UserOptions {
    pub(crate) fn parse(lists: &[String]) -> Result<UserOptions, CommandError> {
        let mut out = UserOptions::default();
        let mut allow: Option<&str> = None;
        for opt in lists
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            let flag = match opt {
                "allow_other" | "allow_root" => {
                    if let Some(prev) = allow.filter(|p| *p != opt) {
                        return Err(CommandError::new(format!(
                            "mount options {prev} and {opt} exclude each other: give one of them"
                        )));
                    }
                    allow = Some(opt);
                    out.acl = if opt == "allow_other" {
                        SessionACL::All
                    } else {
                        SessionACL::RootAndOwner
                    };
                    continue;
                }
                // Always on: the kernel checks permissions.
                "default_permissions" => continue,
                // The volume keeps atime (the kernel leaves it to FUSE daemons). `atime`
                // undoes `noatime`, as with mount(8): the default, relatime.
                "relatime" | "atime" => {
                    out.atime.update = AtimeUpdate::Relative;
                    continue;
                }
                "strictatime" => {
                    out.atime.update = AtimeUpdate::Always;
                    continue;
                }
                "noatime" => {
                    out.atime.update = AtimeUpdate::Never;
                    continue;
                }
                "diratime" | "nodiratime" => {
                    out.atime.dirs = opt == "diratime";
                    continue;
                }
                "ro" => MountOption::RO,
                "rw" => MountOption::RW,
                "exec" => MountOption::Exec,
                "noexec" => MountOption::NoExec,
                "suid" => MountOption::Suid,
                "nosuid" => MountOption::NoSuid,
                "dev" => MountOption::Dev,
                "nodev" => MountOption::NoDev,
                "sync" => MountOption::Sync,
                "async" => MountOption::Async,
                "dirsync" => MountOption::DirSync,
                o if o.starts_with("fsname=") || o.starts_with("subtype=") => {
                    return Err(CommandError::new(format!(
                        "mount option {o} is set by s2sfs itself (fsname names the store); remove it"
                    )));
                }
                o => {
                    return Err(CommandError::new(format!(
                        "unknown mount option {o:?} (known: {KNOWN})"
                    )));
                }
            };
            let opposite = opposite(&flag);
            out.flags
                .retain(|f| Some(f) != opposite.as_ref() && *f != flag);
            out.flags.push(flag);
        }
        // Shown in the mount table, where tools look for it.
        if out.atime.update == AtimeUpdate::Never {
            out.flags.push(MountOption::NoAtime);
        }
        Ok(out)
    }

    /// When the volume updates atime: never on a read-only mount, which writes nothing.
    pub(crate) fn atime(&self) -> AtimeOptions {
        if self.flags.contains(&MountOption::RO) {
            return AtimeOptions { update: AtimeUpdate::Never, ..self.atime };
        }
        self.atime
    }

    /// The fuser configuration: the user's options plus `default_permissions`, the store
    /// as fsname (so /proc/self/mountinfo tells which store a mount uses) and subtype s2sfs.
    pub(crate) fn config(&self, fsname: String, n_threads: usize) -> Config {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(fsname),
            MountOption::Subtype("s2sfs".to_string()),
            MountOption::DefaultPermissions,
        ];
        config.mount_options.extend(self.flags.iter().cloned());
        config.acl = self.acl;
        config.n_threads = Some(n_threads);
        config
    }
}

fn opposite(o: &MountOption) -> Option<MountOption> {
    Some(match o {
        MountOption::RO => MountOption::RW,
        MountOption::RW => MountOption::RO,
        MountOption::Exec => MountOption::NoExec,
        MountOption::NoExec => MountOption::Exec,
        MountOption::Suid => MountOption::NoSuid,
        MountOption::NoSuid => MountOption::Suid,
        MountOption::Dev => MountOption::NoDev,
        MountOption::NoDev => MountOption::Dev,
        MountOption::Sync => MountOption::Async,
        MountOption::Async => MountOption::Sync,
        _ => return None,
    })
}

/// The fsname for a store: `s2sfs:` + its path. When the mount goes through fusermount3
/// (not root), fusermount3 splits its option list at commas and treats a backslash as an
/// escape, so both are escaped there; mount(2) (root) takes the source verbatim.
pub(crate) fn fsname(store: &std::path::Path, via_fusermount: bool) -> String {
    let raw = format!("s2sfs:{}", store.display());
    if !via_fusermount {
        return raw;
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '\\' || c == ',' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<UserOptions, CommandError> {
        UserOptions::parse(&[s.to_string()])
    }

    #[test]
    fn known_options_parse() {
        let o = parse("allow_other,ro,noatime").unwrap();
        assert_eq!(o.acl, SessionACL::All);
        assert_eq!(o.flags, vec![MountOption::RO, MountOption::NoAtime]);
        assert_eq!(o.atime().update, AtimeUpdate::Never);
        assert_eq!(parse("allow_root").unwrap().acl, SessionACL::RootAndOwner);
        assert_eq!(parse("").unwrap(), UserOptions::default());
    }

    #[test]
    fn later_options_win() {
        let o = UserOptions::parse(&["ro,exec".into(), "rw".into()]).unwrap();
        assert_eq!(o.flags, vec![MountOption::Exec, MountOption::RW]);
    }

    #[test]
    fn atime_options() {
        let atime = |s: &str| parse(s).unwrap().atime();
        assert_eq!(atime(""), AtimeOptions::default());
        assert_eq!(atime("").update, AtimeUpdate::Relative);
        assert_eq!(atime("strictatime").update, AtimeUpdate::Always);
        assert_eq!(atime("noatime,relatime").update, AtimeUpdate::Relative);
        assert_eq!(atime("noatime,atime").update, AtimeUpdate::Relative);
        assert_eq!(atime("strictatime,noatime").update, AtimeUpdate::Never);
        assert!(!atime("nodiratime").dirs);
        assert!(atime("nodiratime,diratime").dirs);
        // Read-only: nothing is written, atime included.
        assert_eq!(atime("strictatime,ro").update, AtimeUpdate::Never);
        assert_eq!(atime("ro,rw,strictatime").update, AtimeUpdate::Always);
        // The kernel hears of noatime only when it is what holds.
        assert!(!parse("noatime,strictatime").unwrap().flags.contains(&MountOption::NoAtime));
    }

    #[test]
    fn bad_options_are_errors() {
        let e = parse("rw,bogus").unwrap_err();
        assert!(
            e.message().contains("unknown mount option \"bogus\""),
            "{e}"
        );
        assert!(parse("allow_other,allow_root").is_err());
        assert!(parse("fsname=x").is_err());
    }

    #[test]
    fn config_has_fixed_options() {
        let c = parse("nodev").unwrap().config("s2sfs:/st".into(), 4);
        assert!(c.mount_options.contains(&MountOption::DefaultPermissions));
        assert!(
            c.mount_options
                .contains(&MountOption::FSName("s2sfs:/st".into()))
        );
        assert!(
            c.mount_options
                .contains(&MountOption::Subtype("s2sfs".into()))
        );
        assert!(c.mount_options.contains(&MountOption::NoDev));
        assert_eq!(c.n_threads, Some(4));
    }

    #[test]
    fn fsname_escaping() {
        let p = std::path::Path::new("/var/lib/s2sfs/mnt-my\\x20vol,a");
        assert_eq!(fsname(p, false), "s2sfs:/var/lib/s2sfs/mnt-my\\x20vol,a");
        assert_eq!(fsname(p, true), "s2sfs:/var/lib/s2sfs/mnt-my\\\\x20vol\\,a");
    }
}
