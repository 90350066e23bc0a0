//! Wire types: events (see spec/managed-agents-api.md).
