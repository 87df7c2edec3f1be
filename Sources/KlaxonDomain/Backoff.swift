/// Exponential backoff, one formula for every retry in Klaxon (outbox messages, pages, incidents
/// whose processing failed): `first` after the first failure, doubling, never above `cap`.
public enum Backoff {
    public static func delay(afterFailures failures: Int, first: Millis, cap: Millis) -> Millis {
        let doublings = Millis(min(max(failures - 1, 0), 40))
        let (value, overflow) = first.multipliedReportingOverflow(by: Millis(1) << doublings)
        return overflow ? cap : min(cap, value)
    }
}
