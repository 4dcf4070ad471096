fn main() -> std::process::ExitCode {
    orderflow_runtime::main("orderflow-order", orderflow_order::run)
}
