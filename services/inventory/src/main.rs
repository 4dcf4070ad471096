fn main() -> std::process::ExitCode {
    orderflow_runtime::main("orderflow-inventory", orderflow_inventory::run)
}
