//! The embedded store: registrations, bans and API-defined extensions on disk, so they survive a restart and a
//! `kill -9` (ARCHITECTURE "State", issue 3 item 4, SIG-02, SEC-08).
//!
//! # Why redb
//! [redb](https://www.redb.org) is a maintained, pure-Rust embedded key-value database
//! with ACID transactions, copy-on-write B-trees and checksummed commit slots: a commit with
//! `Durability::Immediate` has been fsync'ed when it returns, and a crash at any point
//! leaves the last committed state. The alternatives lose on what matters here:
//! - **sled** has been an unmaintained beta for years, with an unstable file format.
//! - **SQLite** (rusqlite) brings a C library into a pure-Rust binary and a SQL layer for
//!   what are two key-value tables.
//!
//! redb 2.x is used because it supports the workspace's Rust 1.85; later majors need a
//! newer compiler.
//!
//! # Durability contract
//! The driver commits at once when the store is idle, and under load at most once per
//! commit interval (`driver::persist`), collecting the changes meanwhile into
//! `&[StoreOp]` for one [`Store::apply`]: one write transaction, one fsync, for however
//! many registrations the interval gathered. It does so
//! *before* it sends the answers it held meanwhile, so a `kill -9` never loses a binding a
//! phone was told about. A failed `apply` leaves the store as it was.
//!
//! API-defined extensions ([`ExtensionTable`], EXT-01) are written one at a time, each in
//! its own durable transaction, before the admin API answers: an extension a client was
//! told about survives a `kill -9`. Deleting one also deletes its stored bindings in the
//! same transaction.
//!
//! # What it owns
//! The database file `DIR/voxgate.redb`, its tables and schema version, and the record
//! encoding (`record`). Times are stored as wall-clock Unix seconds; [`StoredBinding`] and
//! [`StoredBan`] convert from and to the control plane's `Instant`-based types.
//! Loading prunes records that expired while voxgate was down.
//!
//! # What it does not own
//! Which bindings and bans exist (the registrar and security policy in the control plane),
//! reading the clock (the caller passes `now_unix`), the Redis backend for clusters, and
//! anything else the ARCHITECTURE keeps in the store (CDRs, voicemail: later milestones).

mod record;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableTable, TableDefinition};

pub use record::{RecordError, StoredBan, StoredBinding, StoredExtension};

/// The database file inside `store.path`.
pub const FILE_NAME: &str = "voxgate.redb";

/// Version of the table layout. A file with another version is refused rather than
/// misread.
const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (AOR, contact URI) → encoded [`StoredBinding`].
const BINDINGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("bindings");
/// Address octets (4 or 16) → encoded [`StoredBan`].
const BANS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bans");
/// Extension number → encoded [`StoredExtension`] (defined through the admin API). A new
/// table in a file of the same schema version: older files get it created on open.
const EXTENSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("extensions");

/// One change, applied with the others of its batch in a single transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace the binding with this (AOR, contact).
    PutBinding(StoredBinding),
    /// Remove a binding; removing one that is not there is not an error.
    RemoveBinding { aor: String, contact: String },
    /// Insert or replace the ban of this address.
    PutBan(StoredBan),
    /// Lift a ban; lifting one that is not there is not an error.
    RemoveBan { ip: IpAddr },
}

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("creating the store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Includes "already open": another voxgate process (or store) holds the file.
    #[error("opening the store {path}: {source}")]
    Open {
        path: PathBuf,
        /// Boxed, as redb's errors are large and travel in every `Result` here.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("store {path} has schema version {found}; this voxgate reads version {expected}")]
    Schema {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("store transaction: {0}")]
    Database(#[source] Box<redb::Error>),
    #[error("store table {table}: record {key}: {source}")]
    Record {
        table: &'static str,
        key: String,
        #[source]
        source: RecordError,
    },
    #[error("starting the store thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// redb has one error type per operation; all of them end up as [`StoreError::Database`].
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The open store. One per process: the file is locked while it is open.
pub struct Store {
    /// Shared with the [`ExtensionTable`] handles; redb serialises write transactions.
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens `dir/voxgate.redb`, creating the directory and the file when missing. After a
    /// crash, redb recovers the last committed state here (which may take a moment on a
    /// large file).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let store = Store {
            db: Arc::new(db),
            path,
        };
        store.init_schema()?;
        Ok(store)
    }

    /// The database file.
    #[allow(
        dead_code,
        reason = "for messages and tools; main reports the directory"
    )]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables on first use and checks the schema version.
    fn init_schema(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema", SCHEMA_VERSION)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::Schema {
                        path: self.path.clone(),
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
            txn.open_table(BINDINGS)?;
            txn.open_table(BANS)?;
            txn.open_table(EXTENSIONS)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A handle on the table of API-defined extensions, usable beside the store itself.
    pub fn extensions(&self) -> ExtensionTable {
        ExtensionTable {
            db: Arc::clone(&self.db),
        }
    }

    /// Applies `ops` in order as one transaction, durable (fsync'ed) when this returns
    /// `Ok`. On `Err` none of them took effect. An empty batch does nothing.
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut bindings = txn.open_table(BINDINGS)?;
            let mut bans = txn.open_table(BANS)?;
            for op in ops {
                match op {
                    StoreOp::PutBinding(b) => {
                        let value = record::encode_binding(b);
                        bindings.insert((b.aor.as_str(), b.contact.as_str()), value.as_slice())?;
                    }
                    StoreOp::RemoveBinding { aor, contact } => {
                        bindings.remove((aor.as_str(), contact.as_str()))?;
                    }
                    StoreOp::PutBan(ban) => {
                        let key = record::ip_key(ban.ip);
                        let value = record::encode_ban(ban);
                        bans.insert(key.as_slice(), value.as_slice())?;
                    }
                    StoreOp::RemoveBan { ip } => {
                        bans.remove(record::ip_key(*ip).as_slice())?;
                    }
                }
            }
        }
        // Dropping an uncommitted transaction (the `?`s above) aborts it.
        txn.commit()?;
        Ok(())
    }

    /// Every binding still alive at `now_unix`; expired ones are deleted from the file in
    /// the same step. A record that cannot be decoded is an error (a newer voxgate's file,
    /// or corruption redb's checksums did not catch), not silently dropped.
    pub fn load_bindings(&self, now_unix: u64) -> Result<Vec<StoredBinding>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut live = Vec::new();
        let mut expired: Vec<(String, String)> = Vec::new();
        {
            let mut table = txn.open_table(BINDINGS)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                let (aor, contact) = key.value();
                let binding =
                    record::decode_binding(aor, contact, value.value()).map_err(|source| {
                        StoreError::Record {
                            table: "bindings",
                            key: format!("{aor} {contact}"),
                            source,
                        }
                    })?;
                if binding.is_live(now_unix) {
                    live.push(binding);
                } else {
                    expired.push((aor.to_owned(), contact.to_owned()));
                }
            }
            for (aor, contact) in &expired {
                table.remove((aor.as_str(), contact.as_str()))?;
            }
        }
        if expired.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
            tracing::info!(
                pruned = expired.len(),
                "expired registrations pruned from the store"
            );
        }
        Ok(live)
    }

    /// Every ban still in force at `now_unix`; ended ones are deleted from the file in the
    /// same step.
    pub fn load_bans(&self, now_unix: u64) -> Result<Vec<StoredBan>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut live = Vec::new();
        let mut expired: Vec<Vec<u8>> = Vec::new();
        {
            let mut table = txn.open_table(BANS)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                let ban = record::decode_ban(key.value(), value.value()).map_err(|source| {
                    StoreError::Record {
                        table: "bans",
                        key: format!("{:02x?}", key.value()),
                        source,
                    }
                })?;
                if ban.is_live(now_unix) {
                    live.push(ban);
                } else {
                    expired.push(key.value().to_vec());
                }
            }
            for key in &expired {
                table.remove(key.as_slice())?;
            }
        }
        if expired.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
            tracing::info!(pruned = expired.len(), "ended bans pruned from the store");
        }
        Ok(live)
    }
}

/// The extensions defined through the admin API (EXT-01). Every write is its own durable
/// transaction: when a method returns `Ok`, the change is on disk.
#[derive(Clone)]
pub struct ExtensionTable {
    db: Arc<Database>,
}

impl std::fmt::Debug for ExtensionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionTable").finish_non_exhaustive()
    }
}

impl ExtensionTable {
    /// Every stored extension, ordered by number. An undecodable record is an error.
    pub fn load(&self) -> Result<Vec<StoredExtension>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EXTENSIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let number = key.value();
            let ext = record::decode_extension(number, value.value()).map_err(|source| {
                StoreError::Record {
                    table: "extensions",
                    key: number.to_owned(),
                    source,
                }
            })?;
            out.push(ext);
        }
        Ok(out)
    }

    /// Insert or replace `extension`; durable (fsync'ed) when this returns `Ok`.
    pub fn put(&self, extension: &StoredExtension) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn.open_table(EXTENSIONS)?;
            let value = record::encode_extension(extension);
            table.insert(extension.number.as_str(), value.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Delete the extension `number` and, when `with_bindings`, every stored binding of its
    /// AOR, in one durable transaction. Returns whether the extension was there.
    pub fn remove(&self, number: &str, with_bindings: bool) -> Result<bool, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        let existed;
        {
            let mut table = txn.open_table(EXTENSIONS)?;
            existed = table.remove(number)?.is_some();
            if with_bindings {
                let mut bindings = txn.open_table(BINDINGS)?;
                let mut contacts: Vec<String> = Vec::new();
                for entry in bindings.range((number, "")..)? {
                    let (key, _) = entry?;
                    let (aor, contact) = key.value();
                    if aor != number {
                        break;
                    }
                    contacts.push(contact.to_owned());
                }
                for contact in &contacts {
                    bindings.remove((number, contact.as_str()))?;
                }
            }
        }
        txn.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests;
