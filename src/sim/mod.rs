//! graph-sim: a Microsoft Graph simulator (placeholder).
