//! What a client may send (spec §4.6.1, `…EventParams`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// Parameters for sending a user message to the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "user.message")]
pub struct UserMessageEventParams {
    pub content: Vec<UserMessageContentParam>,
}

/// Parameters for sending an interrupt to pause the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "user.interrupt")]
pub struct UserInterruptEventParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// Parameters for confirming or denying a tool execution request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "user.tool_confirmation")]
pub struct UserToolConfirmationEventParams {
    #[schemars(extend("enum" = ["allow", "deny"]))]
    pub result: String,
    pub tool_use_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_message: Option<String>,
}

/// Parameters for providing the result of a custom tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "user.custom_tool_result")]
pub struct UserCustomToolResultEventParams {
    pub custom_tool_use_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ToolResultContentParam>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

/// Parameters for defining an outcome the agent should work toward. The agent begins work on receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "user.define_outcome")]
pub struct UserDefineOutcomeEventParams {
    pub description: String,
    pub rubric: RubricParam,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<i64>,
}

/// Parameters for providing the result of an agent-toolset tool execution. Only valid on `self_hosted` environments, where sandbox-routed tools are executed by the client rather than the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "user.tool_result")]
pub struct UserToolResultEventParams {
    pub tool_use_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ToolResultContentParam>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

/// Privileged context for the accompanying turn and all subsequent turns, appended to the session's system context as a `role: "system"` turn rather than replacing the top-level system prompt. At most one per request: it must be the final event and immediately follow the `user.message`, `user.tool_result`, or `user.custom_tool_result` it accompanies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "system.message")]
pub struct SystemMessageEventParams {
    pub content: Vec<SystemContentBlockParam>,
}
