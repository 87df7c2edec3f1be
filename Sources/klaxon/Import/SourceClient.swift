import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// GETs against another pager's REST API: its name for messages, its base URL and the headers
/// that authenticate. A 401/403 exits 5, any other failure names the call.
struct SourceClient {
    let pager: String
    let base: String
    let headers: [(String, String)]

    init(pager: String, base: String, headers: [(String, String)]) {
        self.pager = pager
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.headers = headers
    }

    func get(_ path: String, query: [String] = []) async throws -> [String: Any] {
        let url = "\(base)/\(path)" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        var request = HTTPClientRequest(url: url)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        } catch {
            throw CLIError(code: CLIExit.unreachable, message: "cannot reach \(pager) at \(base): \(error)")
        }
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else {
            throw CLIError(
                code: response.status == .unauthorized || response.status == .forbidden ? CLIExit.notAllowed : CLIExit.refused,
                message: "\(pager) answered \(response.status.code) to GET /\(path): \(String(buffer: body).prefix(300))")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
            throw CLIError(code: CLIExit.failed, message: "\(pager)'s answer to GET /\(path) is not a JSON object")
        }
        return object
    }

    /// Query text for a value (RFC 3986 unreserved characters kept).
    static func escape(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

/// Saved API answers: one JSON file per name in a folder (`--save DIR` writes, `--from DIR` reads).
enum SavedAnswers {
    static func write(_ documents: [String: Any], to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, value) in documents {
            let bytes = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
            try bytes.write(to: URL(fileURLWithPath: directory).appendingPathComponent("\(name).json"))
        }
    }

    static func read(_ name: String, in directory: String) throws -> Any {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(name).json").path
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw CLIError(code: CLIExit.failed, message: "\(path): cannot read the file (written by --save)")
        }
        do { return try JSONSerialization.jsonObject(with: bytes) } catch {
            throw CLIError(code: CLIExit.failed, message: "\(path): not JSON")
        }
    }
}
