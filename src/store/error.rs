//! The storage layer's error type. It carries messages rather than the underlying errors so that
//! one commit failure can be reported to every request of a batch (the type is `Clone`).

/// What can go wrong below the domain logic. None of these is a client's mistake: the HTTP layer
/// maps every variant to a 5xx and logs the detail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(String),
    #[error("could not decode a stored {kind} record: {message}")]
    Corrupt { kind: &'static str, message: String },
    #[error(
        "the database was written by a newer Portcullis (schema {found}, this build knows up to {known})"
    )]
    SchemaTooNew { found: u64, known: u64 },
    #[error("the store is shut down")]
    Closed,
    #[error("a write operation panicked; its changes were rolled back")]
    Panicked,
}

macro_rules! database_errors {
    ($($source:ty),* $(,)?) => {
        $(impl From<$source> for StoreError {
            fn from(err: $source) -> Self {
                StoreError::Database(err.to_string())
            }
        })*
    };
}

database_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
);
