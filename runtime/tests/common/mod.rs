//! Shared by the runtime's integration tests: one client of the default CPU
//! plugin per test process (PJRT clients are thread-safe, so parallel tests
//! share it), and small program builders.

use std::sync::OnceLock;

use axle_runtime::Client;

/// Devices of the shared client: enough for a 2x2 mesh.
pub const DEVICES: usize = 4;

/// The process-wide client of the default CPU plugin with [`DEVICES`] devices.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::cpu(DEVICES).expect("default CPU PJRT plugin (run scripts/test.sh to install it)")
    })
}

#[allow(dead_code)] // not every test binary uses it
/// A single-function module applying `op` element-wise to two `ty` tensors.
pub fn binary_program(op: &str, ty: &str) -> String {
    format!(
        "func.func public @main(%a: {ty}, %b: {ty}) -> {ty} {{\n  %0 = stablehlo.{op} %a, %b : {ty}\n  return %0 : {ty}\n}}\n"
    )
}
