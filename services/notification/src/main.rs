fn main() -> std::process::ExitCode {
    orderflow_runtime::main("orderflow-notification", orderflow_notification::run)
}
