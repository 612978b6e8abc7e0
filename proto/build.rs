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
    std::fs::write(out.join("rpc.rs"), rpc_enum(&set)?)?;
    println!("cargo:rerun-if-changed=clawplane");
    Ok(())
}

/// `enum Rpc`: one variant per method of the `clawplane.v1` services (`ChatService/Send` →
/// `Rpc::ChatSend`), so code names an RPC by a checked identifier instead of a string.
fn rpc_enum(set: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(set)?;
    let mut rpcs = Vec::new();
    for f in &set.file {
        if f.package() != "clawplane.v1" {
            continue;
        }
        for s in &f.service {
            let short = s.name().strip_suffix("Service").unwrap_or(s.name());
            for m in &s.method {
                let variant = format!("{short}{}", m.name());
                rpcs.push((
                    variant,
                    format!("{}.{}/{}", f.package(), s.name(), m.name()),
                ));
            }
        }
    }
    rpcs.sort();
    let mut out = String::from(
        "/// Every RPC of the `clawplane.v1` contract (generated from the descriptor set).\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n\
         pub enum Rpc {\n",
    );
    for (v, full) in &rpcs {
        out.push_str(&format!("    /// `{full}`\n    {v},\n"));
    }
    out.push_str("}\n\nimpl Rpc {\n    /// Every RPC, in name order.\n    pub const ALL: &'static [Rpc] = &[\n");
    for (v, _) in &rpcs {
        out.push_str(&format!("        Rpc::{v},\n"));
    }
    out.push_str("    ];\n\n    /// The full gRPC method name (`package.Service/Method`).\n    pub const fn full_name(self) -> &'static str {\n        match self {\n");
    for (v, full) in &rpcs {
        out.push_str(&format!("            Rpc::{v} => \"{full}\",\n"));
    }
    out.push_str("        }\n    }\n\n    /// The RPC with this full name.\n    pub fn from_full_name(name: &str) -> Option<Rpc> {\n        Rpc::ALL.iter().copied().find(|r| r.full_name() == name)\n    }\n}\n");
    Ok(out)
}
