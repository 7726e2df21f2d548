//! The `-o` mount options a user may pass: those for FUSE, the access-time ones for the
//! volume, and the fixed ones s2sfs adds.

use fuser::{Config, MountOption, SessionACL};

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use super::error::CommandError;
use crate::codec::{CodecKind, CodecSpec};
use crate::volume::{AtimeOptions, AtimeUpdate};

/// The options users may give with `-o`, for the error message.
const KNOWN: &str = "allow_other, allow_root, ro, rw, exec, noexec, suid, nosuid, dev, nodev, \
                     relatime, strictatime, atime, noatime, diratime, nodiratime, sync, async, \
                     dirsync, default_permissions, codec=zstd|t5|auto|raw, model=DIR, \
                     zstd_level=N, recompress_after=DURATION|off";

/// User options parsed from `-o a,b,c` (several `-o` add up). Later options override
/// earlier ones of the same pair (`ro,rw` is rw), as with mount(8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserOptions {
    pub(crate) acl: SessionACL,
    /// Kernel flags, at most one of each pair, in first-seen order.
    pub(crate) flags: Vec<MountOption>,
    /// The access-time options as given; [`UserOptions::atime`] is what the volume gets.
    atime: AtimeOptions,
    /// `codec=`, `model=`, `zstd_level=`: the same as `--codec`, `--model`, `--zstd-level`,
    /// for the mount helper and fstab, where only `-o` reaches s2sfs. They win over flags.
    pub(crate) codec: CodecSpec,
    /// `recompress_after=`: Some(None) is `off`.
    pub(crate) recompress_after: Option<Option<Duration>>,
}

impl UserOptions {
    pub(crate) fn parse(lists: &[String]) -> Result<UserOptions, CommandError> {
        let mut out = UserOptions::default();
        let mut allow: Option<&str> = None;
        for opt in lists.iter().flat_map(|l| l.split(',')).map(str::trim).filter(|o| !o.is_empty()) {
            let flag = match opt {
                "allow_other" | "allow_root" => {
                    if let Some(prev) = allow.filter(|p| *p != opt) {
                        return Err(CommandError::new(format!(
                            "mount options {prev} and {opt} exclude each other: give one of them"
                        )));
                    }
                    allow = Some(opt);
                    out.acl = if opt == "allow_other" { SessionACL::All } else { SessionACL::RootAndOwner };
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
                o if o.contains('=') && out.volume_option(o)? => continue,
                o if o.starts_with("fsname=") || o.starts_with("subtype=") => {
                    return Err(CommandError::new(format!(
                        "mount option {o} is set by s2sfs itself (fsname names the store); remove it"
                    )));
                }
                o => {
                    return Err(CommandError::new(format!("unknown mount option {o:?} (known: {KNOWN})")));
                }
            };
            let opposite = opposite(&flag);
            out.flags.retain(|f| Some(f) != opposite.as_ref() && *f != flag);
            out.flags.push(flag);
        }
        // Shown in the mount table, where tools look for it.
        if out.atime.update == AtimeUpdate::Never {
            out.flags.push(MountOption::NoAtime);
        }
        Ok(out)
    }

    /// Parses `key=value` options of the volume; false for keys that are not its own.
    fn volume_option(&mut self, opt: &str) -> Result<bool, CommandError> {
        let Some((key, value)) = opt.split_once('=') else { return Ok(false) };
        let bad = |why: String| CommandError::new(format!("mount option {opt}: {why}"));
        match key {
            "codec" => {
                let kind = CodecKind::from_str(value, false).map_err(|_| bad("want zstd, t5, auto or raw".into()))?;
                self.codec.codec = Some(kind);
            }
            "model" => self.codec.model = Some(PathBuf::from(value)),
            "zstd_level" => {
                let level: i32 = value.parse().map_err(|_| bad("want a number from 1 to 22".into()))?;
                if !(1..=22).contains(&level) {
                    return Err(bad("want a number from 1 to 22".into()));
                }
                self.codec.zstd_level = Some(level);
            }
            "recompress_after" => {
                self.recompress_after = Some(match value {
                    "off" | "0" => None,
                    v => Some(
                        humantime::parse_duration(v).map_err(|e| bad(format!("{e} (e.g. 30s, 10m, 2h, or off)")))?,
                    ),
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The codec spec of the mount: `base` (the command line's) with `-o` values over it.
    pub(crate) fn codec_spec(&self, base: &CodecSpec) -> CodecSpec {
        CodecSpec {
            codec: self.codec.codec.or(base.codec),
            zstd_level: self.codec.zstd_level.or(base.zstd_level),
            model: self.codec.model.clone().or_else(|| base.model.clone()),
        }
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
    fn volume_options() {
        let o = parse("codec=t5,model=/m,zstd_level=9,recompress_after=30s,ro").unwrap();
        assert_eq!(o.codec, CodecSpec { codec: Some(CodecKind::T5), zstd_level: Some(9), model: Some("/m".into()) });
        assert_eq!(o.recompress_after, Some(Some(Duration::from_secs(30))));
        assert_eq!(parse("recompress_after=off").unwrap().recompress_after, Some(None));
        let base = CodecSpec { codec: Some(CodecKind::Auto), zstd_level: Some(5), model: None };
        let merged = parse("zstd_level=7").unwrap().codec_spec(&base);
        assert_eq!(merged, CodecSpec { codec: Some(CodecKind::Auto), zstd_level: Some(7), model: None });
        for bad in ["codec=lz4", "zstd_level=99", "zstd_level=x", "recompress_after=soon"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn bad_options_are_errors() {
        let e = parse("rw,bogus").unwrap_err();
        assert!(e.message().contains("unknown mount option \"bogus\""), "{e}");
        assert!(parse("allow_other,allow_root").is_err());
        assert!(parse("fsname=x").is_err());
    }

    #[test]
    fn config_has_fixed_options() {
        let c = parse("nodev").unwrap().config("s2sfs:/st".into(), 4);
        assert!(c.mount_options.contains(&MountOption::DefaultPermissions));
        assert!(c.mount_options.contains(&MountOption::FSName("s2sfs:/st".into())));
        assert!(c.mount_options.contains(&MountOption::Subtype("s2sfs".into())));
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
