mod bad_input;
mod routes;
mod sse;
mod tenant_isolation;
