//! fsck's writing side: applies a repair plan as one atomic, durable change.

use super::checker::Plan;
use crate::store::{Store, StoreError};

impl Store {
    pub(super) fn fsck_apply(&self, plan: Plan) -> Result<(), StoreError> {
        let Plan { delete, delete_prefixes, put, inodes, entries, xattrs } = plan;
        let mut txn = self.begin();
        // Deletes first: a record both deleted and written (a rebuilt entry) ends up written.
        for key in delete {
            txn.del_raw(key);
        }
        for prefix in &delete_prefixes {
            txn.del_prefix(prefix)?;
        }
        for (key, value) in put {
            txn.put_raw(key, value);
        }
        for (ino, rec) in &inodes {
            txn.put_inode(*ino, rec);
        }
        for (parent, name, ino, kind) in &entries {
            txn.add_entry(*parent, name, *ino, *kind)?;
        }
        for (ino, name, value) in &xattrs {
            txn.set_xattr(*ino, name, value);
        }
        txn.commit(true)
    }
}
