use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Use a system protoc when PROTOC is set, else the vendored one (CI needs no apt).
    if env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("PROTOC", protoc) };
    }
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor = out.join("clawplane_descriptor.bin");
    let files = [
        "clawplane/v1/run.proto",
        "clawplane/v1/session.proto",
        "clawplane/v1/chat.proto",
        "clawplane/v1/agent.proto",
        "clawplane/v1/event.proto",
        "clawplane/v1/gateway.proto",
        "clawplane/v1/device.proto",
        "clawplane/v1/channel.proto",
        "clawplane/v1/webhook.proto",
        "clawplane/v1/model.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&files, &["."])?;
    let set = std::fs::read(&descriptor)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        .build(&[".clawplane.v1"])?;
    println!("cargo:rerun-if-changed=clawplane");
    Ok(())
}
