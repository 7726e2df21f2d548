//! The one error type of the `mount` / `umount` commands: a single line, ready to be
//! printed after "s2sfs: ".

use std::fmt;

/// An error of `s2sfs mount` / `s2sfs umount`: one line naming what went wrong and, where
/// there is one, the fix. It has no `source()`: the causes are already in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError(String);

impl CommandError {
    pub(crate) fn new(msg: impl Into<String>) -> CommandError {
        // One line, whatever the causes printed.
        let msg: String = msg.into();
        CommandError(msg.replace('\n', " "))
    }

    /// `context: cause: cause…`, from an error and its `source()` chain.
    pub(crate) fn with_cause(context: impl fmt::Display, err: &(dyn std::error::Error + 'static)) -> CommandError {
        CommandError::new(format!("{context}: {}", error_chain(err)))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

impl From<crate::Error> for CommandError {
    fn from(e: crate::Error) -> CommandError {
        CommandError::new(error_chain(&e))
    }
}

pub(crate) use crate::error::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "/x: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_skips_causes_already_printed() {
        let e = Outer(std::io::Error::other("boom"));
        assert_eq!(error_chain(&e), "/x: boom");
        let e = CommandError::with_cause("opening", &e);
        assert_eq!(e.message(), "opening: /x: boom");
    }
}
