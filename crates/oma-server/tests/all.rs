//! HTTP-level suites against real servers on loopback, on SQLite and (when configured)
//! PostgreSQL. One binary so the suites share a build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
