//! How the scenarios' users log in (`--login`): [`relive_tests::logon`] against the server
//! under test.

pub(crate) use relive_tests::logon::{Logon, Method};

use crate::server::Server;

/// Ready to log users in to `server` by `method`.
pub(crate) async fn to(method: Method, server: &Server) -> anyhow::Result<Logon> {
    Logon::new(method, server.ns, server.https, &server.ca_cert, None).await
}
