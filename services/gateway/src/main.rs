fn main() -> std::process::ExitCode {
    orderflow_runtime::main("orderflow-gateway", orderflow_gateway::run)
}
