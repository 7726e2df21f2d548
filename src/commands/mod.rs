//! The library sides of the commands that are more than a call into one layer:
//! `s2sfs fsck` (checking a store, mounted or not, and printing the report) and
//! `s2sfs codec` (running a codec on whole files, outside any volume).

pub mod codec;
pub mod fsck;
