//! Sub-shapes of the events (spec §4.7): content blocks, sources, errors, stop reasons, usage,
//! workflow objects. Generated once from the spec tables, then kept by hand.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

/// Content block in a mid-conversation system message. Text-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "text")]
pub struct SystemContentBlockParam {
    pub text: String,
}

/// Regular text content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextBlockParam {
    pub text: String,
}

/// Image content specified directly as base64 data or as a reference via a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageBlockParam {
    pub source: ImageSourceParam,
}

/// Document content, either specified directly as base64 data, as text, or as a reference via a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DocumentBlockParam {
    pub source: DocumentSourceParam,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Placeholder for content withheld by Anthropic model policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RedactedBlockParam {}

/// A block containing a web search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResultBlockParam {
    pub citations: SearchResultCitationsParam,
    pub content: Vec<SearchResultContentParam>,
    pub source: String,
    pub title: String,
}

/// Rubric referenced by a file uploaded via the Files API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileRubricParams {
    pub file_id: String,
}

/// Rubric content provided inline as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextRubricParams {
    pub content: String,
}

/// Citation settings for a search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResultCitationsParam {
    pub enabled: bool,
}

/// Text content within a search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "text")]
pub struct SearchResultContentParam {
    pub text: String,
}

/// Base64-encoded image data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Base64ImageSourceParam {
    pub data: String,
    pub media_type: String,
}

/// Image referenced by URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct URLImageSourceParam {
    pub url: String,
}

/// Image referenced by file ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileImageSourceParam {
    pub file_id: String,
}

/// Base64-encoded document data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Base64DocumentSourceParam {
    pub data: String,
    pub media_type: String,
}

/// Plain text document content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlainTextDocumentSourceParam {
    pub data: String,
    pub media_type: String,
}

/// Document referenced by URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct URLDocumentSourceParam {
    pub url: String,
}

/// Document referenced by file ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileDocumentSourceParam {
    pub file_id: String,
}

/// Structured information about a refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "refusal")]
pub struct SessionRefusalStopDetails {
    #[serde(default, skip_serializing_if = "super::never")]
    #[schemars(extend("enum" = ["cyber", "bio", "frontier_llm", "reasoning_extraction", "general_harms", null]))]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "super::never")]
    pub explanation: Option<String>,
}

/// Token usage for a single model request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpanModelUsage {
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    #[serde(default, skip_serializing_if = "super::never")]
    #[schemars(extend("enum" = ["standard", "fast", null]))]
    pub speed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "content_delta")]
pub struct DeltaContent {
    pub content: AgentMessageContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
}

/// Content block in a mid-conversation system message. Text-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "text")]
pub struct SystemContentBlock {
    pub text: String,
}

/// Point-in-time snapshot of a session's cumulative usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionUsageSnapshot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreationUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_cost: Option<MonetaryAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUsage>,
}

/// A phase that a workflow run's plan declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowRunPhase {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub name: String,
}

/// Regular text content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextBlock {
    pub text: String,
}

/// Image content specified directly as base64 data or as a reference via a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageBlock {
    pub source: ImageSource,
}

/// Document content, either specified directly as base64 data, as text, or as a reference via a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DocumentBlock {
    pub source: DocumentSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Placeholder for content withheld by Anthropic model policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RedactedBlock {}

/// A block containing a web search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResultBlock {
    pub citations: SearchResultCitations,
    pub content: Vec<SearchResultContent>,
    pub source: String,
    pub title: String,
}

/// The resolved permission_policy was always_allow; accompanies evaluated_permission "allow".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentToolEvaluationAlwaysAllow {}

/// The resolved permission_policy was always_ask; accompanies evaluated_permission "ask".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentToolEvaluationAlwaysAsk {}

/// The resolved permission_policy was auto: the server judged this invocation individually.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentToolEvaluationAuto {
    pub evaluated_permission: AgentAutoEvaluatedPermission,
}

/// An unknown or unexpected error occurred during session execution. A fallback variant; clients that don't recognize a new error code can match on `retry_status` and `message` alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnknownErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// The model is currently overloaded. Emitted after automatic retries are exhausted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelOverloadedErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// The model request was rate-limited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelRateLimitedErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// A model request failed for a reason other than overload or rate-limiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelRequestFailedErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// Failed to connect to an MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MCPConnectionFailedErrorObject {
    pub mcp_server_name: String,
    pub message: String,
    pub retry_status: RetryStatus,
}

/// Authentication to an MCP server failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MCPAuthenticationFailedErrorObject {
    pub mcp_server_name: String,
    pub message: String,
    pub retry_status: RetryStatus,
}

/// The caller's organization or workspace cannot make model requests — out of credits or spend limit reached. Retrying with the same credentials will not succeed; the caller must resolve the billing state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BillingErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// An `environment_variable` credential's `auth.networking.allowed_hosts` includes a host the environment's network policy does not permit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CredentialHostUnreachableErrorObject {
    pub credential_id: String,
    pub message: String,
    pub retry_status: RetryStatus,
    pub vault_id: String,
}

/// The turn stopped because the agent loop reached its limit on tool-use rounds (one model response that calls tools, plus running those tools, is one round), not because a request failed. The thread goes idle with `stop_reason: retries_exhausted` (a child thread then terminates); the next `user.message` starts a new turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolUseLimitReachedErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// The turn stopped because the context was compacted the maximum number of times in a row without the model producing a message or a tool call, not because a request failed. The thread goes idle with `stop_reason: retries_exhausted` (a child thread then terminates); the next `user.message` starts a new turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompactionLimitReachedErrorObject {
    pub message: String,
    pub retry_status: RetryStatus,
}

/// The repository host rejected the credentials, or required credentials and received none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryAuthenticationErrorObject {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    pub retry_status: RetryStatus,
}

/// The repository host refused access to the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryForbiddenErrorObject {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    pub retry_status: RetryStatus,
}

/// The repository host reported the repository as not found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryNotFoundErrorObject {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    pub retry_status: RetryStatus,
}

/// The requested branch or commit does not exist in the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryCheckoutErrorObject {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    pub retry_status: RetryStatus,
}

/// The repository could not be cloned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryCloneErrorObject {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    pub retry_status: RetryStatus,
}

/// The agent completed its turn naturally and is ready for the next user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEndTurn {}

/// The agent is idle waiting on one or more blocking user-input events (tool confirmation, custom tool result, etc.). Resolving all of them transitions the session back to running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionRequiresAction {
    pub event_ids: Vec<String>,
}

/// The turn ended because repeated errors exhausted the retry budget or an error escalated to `retry_status: 'exhausted'`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionRetriesExhausted {}

/// The agent stopped because the session's tracked list cost reached its budget, or because its usage includes a model with no list price (which the budget cannot measure). Raise the budget to continue — or, if raising is rejected because a model has no list price, remove the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionBudgetReached {}

/// The turn ended because the model's response was refused, for example by a safety classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionRefusal {}

/// Rubric referenced by a file uploaded via the Files API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileRubric {
    pub file_id: String,
}

/// Rubric content provided inline as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextRubric {
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentMessagePreview {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentThinkingPreview {
    pub id: String,
}

/// The run's plan, a program that the agent wrote, finished. This does not say whether the work succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowRunResultCompleted {}

/// The run failed or reached its time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowRunResultErrorObject {
    pub error: WorkflowRunError,
}

/// The agent stopped the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowRunResultStopped {}

/// The run reached its time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimeoutWorkflowRunErrorObject {
    pub message: String,
}

/// The plan, a program that the agent wrote, failed, or the server refused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProgramWorkflowRunErrorObject {
    pub message: String,
}

/// A failure that has no type of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnknownWorkflowRunErrorObject {
    pub message: String,
}

/// The run exceeded the limit on the number of threads that a run can create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadLimitWorkflowRunErrorObject {
    pub message: String,
}

/// No run was created, because the session was at its limit of open workflow runs, which are runs that have not ended. Only `workflow_run.error` carries this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MaxWorkflowRunsWorkflowRunErrorObject {
    pub message: String,
}

/// Citation settings for a search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResultCitations {
    pub enabled: bool,
}

/// Text content within a search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "text")]
pub struct SearchResultContent {
    pub text: String,
}

/// Base64-encoded image data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Base64ImageSource {
    pub data: String,
    pub media_type: String,
}

/// Image referenced by URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct URLImageSource {
    pub url: String,
}

/// Image referenced by file ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileImageSource {
    pub file_id: String,
}

/// Base64-encoded document data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Base64DocumentSource {
    pub data: String,
    pub media_type: String,
}

/// Plain text document content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlainTextDocumentSource {
    pub data: String,
    pub media_type: String,
}

/// Document referenced by URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct URLDocumentSource {
    pub url: String,
}

/// Document referenced by file ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileDocumentSource {
    pub file_id: String,
}

/// The server judged the invocation safe to execute without client approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentAutoEvaluatedPermissionAllow {}

/// The server reached no judgement; the invocation is held for client approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentAutoEvaluatedPermissionAsk {
    pub reason_code: String,
}

/// The server judged the invocation high-risk, or reached no judgement and did not hold it for client approval (for example, because the organization is out of credits or has reached a spend limit); it does not execute and a synthetic error tool result is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentAutoEvaluatedPermissionDeny {
    pub reason_code: String,
}

/// The server is retrying automatically. Client should wait; the same error type may fire again as retrying, then once as exhausted when the retry budget runs out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryStatusRetrying {}

/// This turn is dead; queued inputs are flushed and the session returns to idle. Client may send a new prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryStatusExhausted {}

/// The session encountered a terminal error and will transition to `terminated` state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryStatusTerminal {}

/// Events that were successfully sent to the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SendSessionEvents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<SentSessionEvent>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum UserMessageContentParam {
    #[serde(rename = "text")]
    Text(TextBlockParam),
    #[serde(rename = "image")]
    Image(ImageBlockParam),
    #[serde(rename = "document")]
    Document(DocumentBlockParam),
    #[serde(rename = "redacted")]
    Redacted(RedactedBlockParam),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ToolResultContentParam {
    #[serde(rename = "text")]
    Text(TextBlockParam),
    #[serde(rename = "image")]
    Image(ImageBlockParam),
    #[serde(rename = "document")]
    Document(DocumentBlockParam),
    #[serde(rename = "search_result")]
    SearchResult(SearchResultBlockParam),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RubricParam {
    #[serde(rename = "file")]
    File(FileRubricParams),
    #[serde(rename = "text")]
    Text(TextRubricParams),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ImageSourceParam {
    #[serde(rename = "base64")]
    Base64(Base64ImageSourceParam),
    #[serde(rename = "url")]
    Url(URLImageSourceParam),
    #[serde(rename = "file")]
    File(FileImageSourceParam),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum DocumentSourceParam {
    #[serde(rename = "base64")]
    Base64(Base64DocumentSourceParam),
    #[serde(rename = "text")]
    Text(PlainTextDocumentSourceParam),
    #[serde(rename = "url")]
    Url(URLDocumentSourceParam),
    #[serde(rename = "file")]
    File(FileDocumentSourceParam),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum UserMessageContent {
    #[serde(rename = "text")]
    Text(TextBlock),
    #[serde(rename = "image")]
    Image(ImageBlock),
    #[serde(rename = "document")]
    Document(DocumentBlock),
    #[serde(rename = "redacted")]
    Redacted(RedactedBlock),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ToolResultContent {
    #[serde(rename = "text")]
    Text(TextBlock),
    #[serde(rename = "image")]
    Image(ImageBlock),
    #[serde(rename = "document")]
    Document(DocumentBlock),
    #[serde(rename = "search_result")]
    SearchResult(SearchResultBlock),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum AgentMessageContent {
    #[serde(rename = "text")]
    Text(TextBlock),
    #[serde(rename = "redacted")]
    Redacted(RedactedBlock),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum AgentToolEvaluation {
    #[serde(rename = "always_allow")]
    AlwaysAllow(AgentToolEvaluationAlwaysAllow),
    #[serde(rename = "always_ask")]
    AlwaysAsk(AgentToolEvaluationAlwaysAsk),
    #[serde(rename = "auto")]
    Auto(AgentToolEvaluationAuto),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum SessionError {
    #[serde(rename = "unknown_error")]
    UnknownError(UnknownErrorObject),
    #[serde(rename = "model_overloaded_error")]
    ModelOverloadedError(ModelOverloadedErrorObject),
    #[serde(rename = "model_rate_limited_error")]
    ModelRateLimitedError(ModelRateLimitedErrorObject),
    #[serde(rename = "model_request_failed_error")]
    ModelRequestFailedError(ModelRequestFailedErrorObject),
    #[serde(rename = "mcp_connection_failed_error")]
    McpConnectionFailedError(MCPConnectionFailedErrorObject),
    #[serde(rename = "mcp_authentication_failed_error")]
    McpAuthenticationFailedError(MCPAuthenticationFailedErrorObject),
    #[serde(rename = "billing_error")]
    BillingError(BillingErrorObject),
    #[serde(rename = "credential_host_unreachable_error")]
    CredentialHostUnreachableError(CredentialHostUnreachableErrorObject),
    #[serde(rename = "tool_use_limit_reached_error")]
    ToolUseLimitReachedError(ToolUseLimitReachedErrorObject),
    #[serde(rename = "compaction_limit_reached_error")]
    CompactionLimitReachedError(CompactionLimitReachedErrorObject),
    #[serde(rename = "repository_authentication_error")]
    RepositoryAuthenticationError(RepositoryAuthenticationErrorObject),
    #[serde(rename = "repository_forbidden_error")]
    RepositoryForbiddenError(RepositoryForbiddenErrorObject),
    #[serde(rename = "repository_not_found_error")]
    RepositoryNotFoundError(RepositoryNotFoundErrorObject),
    #[serde(rename = "repository_checkout_error")]
    RepositoryCheckoutError(RepositoryCheckoutErrorObject),
    #[serde(rename = "repository_clone_error")]
    RepositoryCloneError(RepositoryCloneErrorObject),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum StopReason {
    #[serde(rename = "end_turn")]
    EndTurn(SessionEndTurn),
    #[serde(rename = "requires_action")]
    RequiresAction(SessionRequiresAction),
    #[serde(rename = "retries_exhausted")]
    RetriesExhausted(SessionRetriesExhausted),
    #[serde(rename = "budget_reached")]
    BudgetReached(SessionBudgetReached),
    #[serde(rename = "refusal")]
    Refusal(SessionRefusal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Rubric {
    #[serde(rename = "file")]
    File(FileRubric),
    #[serde(rename = "text")]
    Text(TextRubric),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum StartEventPreview {
    #[serde(rename = "agent.message")]
    AgentMessage(AgentMessagePreview),
    #[serde(rename = "agent.thinking")]
    AgentThinking(AgentThinkingPreview),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum WorkflowRunResult {
    #[serde(rename = "completed")]
    Completed(WorkflowRunResultCompleted),
    #[serde(rename = "error")]
    Error(WorkflowRunResultErrorObject),
    #[serde(rename = "stopped")]
    Stopped(WorkflowRunResultStopped),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum WorkflowRunError {
    #[serde(rename = "timeout_error")]
    TimeoutError(TimeoutWorkflowRunErrorObject),
    #[serde(rename = "program_error")]
    ProgramError(ProgramWorkflowRunErrorObject),
    #[serde(rename = "unknown_error")]
    UnknownError(UnknownWorkflowRunErrorObject),
    #[serde(rename = "thread_limit_error")]
    ThreadLimitError(ThreadLimitWorkflowRunErrorObject),
    #[serde(rename = "max_workflow_runs_error")]
    MaxWorkflowRunsError(MaxWorkflowRunsWorkflowRunErrorObject),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ImageSource {
    #[serde(rename = "base64")]
    Base64(Base64ImageSource),
    #[serde(rename = "url")]
    Url(URLImageSource),
    #[serde(rename = "file")]
    File(FileImageSource),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum DocumentSource {
    #[serde(rename = "base64")]
    Base64(Base64DocumentSource),
    #[serde(rename = "text")]
    Text(PlainTextDocumentSource),
    #[serde(rename = "url")]
    Url(URLDocumentSource),
    #[serde(rename = "file")]
    File(FileDocumentSource),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum AgentAutoEvaluatedPermission {
    #[serde(rename = "allow")]
    Allow(AgentAutoEvaluatedPermissionAllow),
    #[serde(rename = "ask")]
    Ask(AgentAutoEvaluatedPermissionAsk),
    #[serde(rename = "deny")]
    Deny(AgentAutoEvaluatedPermissionDeny),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RetryStatus {
    #[serde(rename = "retrying")]
    Retrying(RetryStatusRetrying),
    #[serde(rename = "exhausted")]
    Exhausted(RetryStatusExhausted),
    #[serde(rename = "terminal")]
    Terminal(RetryStatusTerminal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum SentSessionEvent {
    #[serde(rename = "user.message")]
    UserMessage(UserMessageEvent),
    #[serde(rename = "user.interrupt")]
    UserInterrupt(UserInterruptEvent),
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation(UserToolConfirmationEvent),
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult(UserCustomToolResultEvent),
    #[serde(rename = "user.define_outcome")]
    UserDefineOutcome(UserDefineOutcomeEvent),
    #[serde(rename = "user.tool_result")]
    UserToolResult(UserToolResultEvent),
    #[serde(rename = "system.message")]
    SystemMessage(SystemMessageEvent),
}
