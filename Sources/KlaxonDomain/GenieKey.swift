/// Opsgenie's API keys are UUIDs (36 characters with dashes); Klaxon's routing keys are 32
/// characters. A moved-in Opsgenie key is kept as its 32 hex digits, and Opsgenie's doors
/// (`Authorization: GenieKey …`) read a UUID-shaped key the same way, so a monitor that moves
/// from Opsgenie changes only the host.
public enum GenieKey {
    /// `key` as a routing key: a UUID loses its dashes; anything else is unchanged.
    public static func routingKey(_ key: String) -> String {
        let bytes = Array(key.utf8)
        guard bytes.count == 36 else { return key }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                if byte != UInt8(ascii: "-") { return key }
            } else if !((48...57).contains(byte) || (97...102).contains(byte) || (65...70).contains(byte)) {
                return key
            }
        }
        return String(decoding: bytes.filter { $0 != UInt8(ascii: "-") }, as: UTF8.self)
    }
}
