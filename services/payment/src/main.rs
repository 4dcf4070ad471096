fn main() -> std::process::ExitCode {
    orderflow_runtime::main("orderflow-payment", orderflow_payment::run)
}
