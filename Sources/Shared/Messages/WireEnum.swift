import KlaxonDomain

/// Every Klaxon wire enum numbers its values 0 = unspecified, then 1… in the order of the
/// domain enum's cases (checked against the generated C constants by WireEnumTests).
enum WireEnum {
    static func decode<E: CaseIterable>(_ raw: UInt32, field: String) throws(WireError) -> E? {
        if raw == 0 { return nil }
        let all = Array(E.allCases)
        guard raw <= UInt32(all.count) else {
            throw WireError(field: field, reason: "unknown enum value \(Int32(bitPattern: raw))")
        }
        return all[Int(raw) - 1]
    }

    static func encode<E: CaseIterable & Equatable>(_ value: E?) -> UInt32 {
        guard let value, let index = Array(E.allCases).firstIndex(of: value) else { return 0 }
        return UInt32(index + 1)
    }
}
