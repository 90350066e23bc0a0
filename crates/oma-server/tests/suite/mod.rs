mod bad_input;
mod routes;
mod runtime;
mod sse;
mod tenant_isolation;
