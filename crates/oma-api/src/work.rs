//! Wire types: the self-hosted work queue (spec §3.2.2, §3.2.3; shapes `BetaSelfHostedWork`,
//! `BetaSelfHostedWorkHeartbeatResponse`, `BetaSelfHostedWorkQueueStats`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `BetaSelfHostedWork`: one unit of work for an environment's workers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Work {
    pub id: String,
    /// Always `"work"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub acknowledged_at: Option<String>,
    pub created_at: String,
    pub data: SessionWorkData,
    pub environment_id: String,
    pub latest_heartbeat_at: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Only on poll responses: URL-safe base64 of `{"sessions_token": …}` (§3.2.3).
    pub secret: Option<String>,
    pub started_at: Option<String>,
    /// `queued` | `starting` | `active` | `stopping` | `stopped`.
    pub state: String,
    pub stop_requested_at: Option<String>,
    pub stopped_at: Option<String>,
}

/// `BetaSessionWorkData`: the session a work item runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SessionWorkData {
    pub id: String,
    /// Always `"session"`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `BetaSelfHostedWorkHeartbeatResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct WorkHeartbeat {
    /// The newest heartbeat (RFC 3339), or `""` when none was recorded.
    pub last_heartbeat: String,
    pub lease_extended: bool,
    pub state: String,
    pub ttl_seconds: i64,
    /// Always `"work_heartbeat"`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `BetaSelfHostedWorkQueueStats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct WorkQueueStats {
    /// Items waiting to be picked up (queued, not offered to a worker right now).
    pub depth: i64,
    /// Items offered to a worker and not acknowledged yet.
    pub pending: i64,
    pub oldest_queued_at: Option<String>,
    /// Workers that polled in the last 30 seconds (those that sent `Anthropic-Worker-ID`).
    pub workers_polling: Option<i64>,
    /// Always `"work_queue_stats"`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The payload of a work item's `secret`, before base64 (§3.2.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct WorkSecret {
    pub sessions_token: String,
}
