pub mod health;
pub mod ingest;
pub mod optimization;
pub mod read;
pub mod rollout;
pub mod scores;
