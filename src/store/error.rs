//! The store port's error, on its own so that the pure app error (`error.rs`) can wrap it
//! without naming the port itself: a leaf, below `store`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed; a retry may succeed.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
    /// A stored value does not decode as the type its key promises.
    #[error("the stored value under {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
}
