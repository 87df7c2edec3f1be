import KlaxonDomain

extension RPCStatus {
    public init(code: StatusCode, message: String = "", violations: [FieldViolation] = []) {
        self.init(rawCode: code.rawValue, message: message, violations: violations)
    }

    public var code: StatusCode { StatusCode(rawValue: rawCode) ?? .unknown }
    public static let ok = RPCStatus(code: .ok)
}
