//! The OpenAPI document, generated from the handlers' annotations and the wire types, so it
//! cannot drift from the code. Served at `GET /api/openapi.json`.

use serde::{Deserialize, Serialize};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi, ToSchema,
};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agent Lightning collector",
        description = "Ingest and query agent trajectories. Every /api route and /metrics need \
                       `Authorization: Bearer <API_KEY>`; errors are `{\"error\": \"...\"}`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field or the thing.
    pub error: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    pub trajectory_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuccessResponse {
    pub success: bool,
}

impl SuccessResponse {
    pub const OK: SuccessResponse = SuccessResponse { success: true };
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StepsResponse {
    pub steps: Vec<lightning_core::Step>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentsResponse {
    pub agents: Vec<lightning_core::AgentSummary>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `degraded`.
    pub status: String,
    /// `up` or `down`.
    pub database: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
