//! Plugin loading, discovery errors, client options and device queries on
//! the real default CPU plugin.

use std::path::Path;
use std::sync::Arc;

use axle_runtime::{Client, CreateOption, Error, NamedValue, Plugin, discovery};

#[test]
fn default_cpu_plugin_is_the_lammps_build_of_xla() {
    let plugin = Plugin::load("cpu").unwrap();
    assert!(
        plugin
            .path()
            .ends_with("lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so"),
        "{plugin:?}"
    );
    assert_eq!(plugin.api_version(), (0, 115));
    let attributes = plugin.attributes().unwrap();
    let get = |name: &str| {
        attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert!(
        matches!(get("stablehlo_minimum_version"), Some(NamedValue::Int64List(v)) if v.len() == 3)
    );
    assert!(
        matches!(get("stablehlo_current_version"), Some(NamedValue::Int64List(v)) if v.len() == 3)
    );
}

#[test]
fn a_plugin_is_loaded_once_and_shared_by_clients() {
    let first = Plugin::load("cpu").unwrap();
    let again = Plugin::load_path(first.path()).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    let a = Client::new(first.clone(), &[CreateOption::int("cpu_device_count", 2)]).unwrap();
    let b = Client::new(first, &[CreateOption::int("cpu_device_count", 3)]).unwrap();
    assert_eq!(a.device_count(), 2);
    assert_eq!(b.device_count(), 3);
}

#[test]
fn devices_have_ids_kinds_and_process_indices() {
    let client = Client::cpu(3).unwrap();
    assert_eq!(client.platform_name().unwrap(), "cpu");
    assert!(!client.platform_version().unwrap().is_empty());
    assert_eq!(client.process_index().unwrap(), 0);
    let devices = client.addressable_devices().unwrap();
    assert_eq!(
        devices.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        devices
            .iter()
            .all(|d| d.kind == "cpu" && d.process_index == 0 && d.addressable)
    );
    assert_eq!(client.devices().unwrap(), devices);
}

#[test]
fn an_unknown_or_mistyped_create_option_returns_the_plugins_error() {
    let plugin = Plugin::load("cpu").unwrap();
    let err = Client::new(plugin.clone(), &[CreateOption::int("no_such_option", 1)]).unwrap_err();
    assert!(
        matches!(&err, Error::Pjrt { message, .. } if message.contains("no_such_option")),
        "{err}"
    );
    let err = Client::new(plugin, &[CreateOption::string("cpu_device_count", "four")]).unwrap_err();
    assert!(
        matches!(&err, Error::Pjrt { function: "PJRT_Client_Create", message, .. } if message.contains("cpu_device_count")),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let err = Plugin::load_path(Path::new("/nonexistent/pjrt_plugin.so")).unwrap_err();
    assert!(
        matches!(&err, Error::PluginLoad { path, .. } if path == Path::new("/nonexistent/pjrt_plugin.so")),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/pjrt_plugin.so"));
}

#[test]
fn a_library_that_is_not_a_plugin_is_a_clear_error() {
    // libm is on every Linux machine and has no GetPjrtApi.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists())
    .expect("libm.so.6");
    let err = Plugin::load_path(libm).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a PJRT plugin (no GetPjrtApi symbol)"),
        "{err}"
    );
    let err = Plugin::load_path(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .as_path(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::PluginLoad { .. }), "{err}");
}

#[test]
fn an_uninstalled_platform_lists_where_it_looked_and_how_to_install() {
    if std::env::var_os("AXLE_PJRT_PLUGIN").is_some() || discovery::find_plugin("tpu").is_ok() {
        return; // a TPU plugin (or an override) is present: nothing to check here
    }
    let err = discovery::find_plugin("tpu").unwrap_err();
    let Error::PluginNotFound {
        platform,
        searched,
        install,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(platform, "tpu");
    assert!(!searched.is_empty() && searched.iter().all(|p| p.ends_with("libtpu/libtpu.so")));
    assert!(install.contains("pip install"));
    assert!(err.to_string().contains("libtpu/libtpu.so"));
    assert!(matches!(
        discovery::find_plugin("abacus"),
        Err(Error::UnknownPlatform(_))
    ));
    assert_eq!(
        discovery::find_plugin("/x/y.so").unwrap(),
        Path::new("/x/y.so")
    );
}

/// The CPU plugin's devices share the host's memory and report no limit of
/// their own (`PJRT_Device_MemoryStats` sets no `bytes_limit`, or is not
/// implemented); a device index past the client's devices is an error.
#[test]
fn cpu_devices_report_no_memory_limit() {
    let client = Client::cpu(2).unwrap();
    assert_eq!(client.device_memory_limit(0).unwrap(), None);
    assert_eq!(client.device_memory_limit(1).unwrap(), None);
    let err = client.device_memory_limit(2).unwrap_err();
    assert!(
        matches!(err, Error::DeviceIndex { index: 2, count: 2 }),
        "{err}"
    );
}
