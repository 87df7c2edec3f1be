import Foundation
import NIOCore
import NIOExtras
import NIOPosix
import Shared

public struct SMTPConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var from: String
    public var heloName: String = "klaxon"

    public init(host: String, port: Int, from: String) {
        self.host = host
        self.port = port
        self.from = from
    }
}

/// Email over SMTP: a plain SMTP conversation (EHLO, MAIL FROM, RCPT TO, DATA, QUIT) with a
/// timeout on the whole exchange. The message is plain UTF-8 text a person can act on.
public struct EmailChannel: DeliveryChannel {
    let configuration: SMTPConfiguration
    let timeout: TimeAmount

    public init(configuration: SMTPConfiguration, timeout: TimeAmount) {
        self.configuration = configuration
        self.timeout = timeout
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        let data = Self.render(message, from: configuration.from, to: address, idempotencyKey: idempotencyKey)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await converse(to: address, data: data) }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(timeout.nanoseconds))
                throw DeliveryError(description: "SMTP exchange with \(configuration.host):\(configuration.port) timed out")
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func converse(to address: String, data: String) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .connect(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var lines = inbound.makeAsyncIterator()
            /// One reply (continuation lines "250-…" end with "250 …"); checks its code.
            func expect(_ codes: Set<Int>, after step: String) async throws {
                while true {
                    guard let line = try await lines.next() else {
                        throw DeliveryError(description: "SMTP server closed the connection after \(step)")
                    }
                    let text = String(buffer: line)
                    guard text.count >= 3, let code = Int(text.prefix(3)) else {
                        throw DeliveryError(description: "SMTP server sent \"\(text)\" after \(step)")
                    }
                    if text.count > 3, text[text.index(text.startIndex, offsetBy: 3)] == "-" { continue }
                    guard codes.contains(code) else { throw DeliveryError(description: "SMTP \(step) refused: \(text)") }
                    return
                }
            }
            func send(_ line: String) async throws {
                try await outbound.write(ByteBuffer(string: line + "\r\n"))
            }
            try await expect([220], after: "connect")
            try await send("EHLO \(configuration.heloName)")
            try await expect([250], after: "EHLO")
            try await send("MAIL FROM:<\(configuration.from)>")
            try await expect([250], after: "MAIL FROM")
            try await send("RCPT TO:<\(address)>")
            try await expect([250, 251], after: "RCPT TO")
            try await send("DATA")
            try await expect([354], after: "DATA")
            try await outbound.write(ByteBuffer(string: data))
            try await expect([250], after: "the message")
            try await send("QUIT")
            try? await expect([221], after: "QUIT")
        }
    }

    /// Headers and body, CRLF line ends, dot-stuffed, ending with the lone dot.
    static func render(_ message: WebhookMessage, from: String, to: String, idempotencyKey: String) -> String {
        let incident = message.incident
        let subject = "[\(incident.urgency.uppercased())] #\(incident.number) \(incident.title)"
        var body = [
            "Incident #\(incident.number): \(incident.title)",
            "Service: \(incident.service.name)",
            "Urgency: \(incident.urgency)",
            "Status: \(incident.status)",
            "Why you: \(message.reason.replacingOccurrences(of: "_", with: " "))",
        ]
        if let url = incident.htmlURL { body.append("Open: \(url)") }
        body.append("")
        body.append("Notification \(message.notificationID) for \(message.user.name), sent \(message.sentAt).")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let headers = [
            "From: Klaxon <\(from)>",
            "To: <\(to)>",
            "Subject: \(encodedHeader(subject))",
            "Date: \(formatter.string(from: Date()))",
            "Message-ID: <\(message.notificationID)@klaxon>",
            "X-Klaxon-Notification-Id: \(idempotencyKey)",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        let lines = headers + [""] + body.map { $0.hasPrefix(".") ? "." + $0 : $0 }
        return lines.joined(separator: "\r\n") + "\r\n.\r\n"
    }

    /// RFC 2047 for non-ASCII header text.
    static func encodedHeader(_ text: String) -> String {
        guard !text.allSatisfy(\.isASCII) else { return text }
        return "=?UTF-8?B?\(Data(text.utf8).base64EncodedString())?="
    }
}

extension ChannelKind {
    public static let email = ChannelKind(
        kind: .email, channel: { config, timeout in
            HostPort(config.smtpServer).map {
                EmailChannel(configuration: SMTPConfiguration(host: $0.host, port: $0.port, from: config.smtpFrom), timeout: timeout)
            }
        },
        notConfigured: "no SMTP server configured: set KLAXON_SMTP_SERVER")
}
