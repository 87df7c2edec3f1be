import Crypto
import Foundation

/// Twilio's request signing (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the account's
/// auth token, over the full URL Twilio requested followed by every POST field's name and value,
/// sorted by name. Klaxon checks it on every inbound SMS reply, key press and status callback;
/// the tests sign with the `twilio` package's own RequestValidator.
public enum TwilioSignature {
    public static func sign(url: String, fields: [(String, String)], authToken: String) -> String {
        var data = url
        for (name, value) in fields.sorted(by: { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }) { data += name + value }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(data.utf8), using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// Whether `signature` is Twilio's for this request.
    public static func valid(signature: String?, url: String, fields: [(String, String)], authToken: String) -> Bool {
        guard let signature, !signature.isEmpty, !authToken.isEmpty else { return false }
        return Secrets.constantTimeEquals(Array(sign(url: url, fields: fields, authToken: authToken).utf8), Array(signature.utf8))
    }
}
