fn main() -> std::process::ExitCode {
    orderflow_runtime::main("orderflow-shipping", orderflow_shipping::run)
}
