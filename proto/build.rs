//! Compiles proto/shikko/v1/*.proto with protox (pure Rust), so no protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "shikko/v1/registry.proto",
        "shikko/v1/crl.proto",
        "shikko/v1/ocsp.proto",
        "shikko/v1/info.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
