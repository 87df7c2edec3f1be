import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import Shared

/// STARTTLS on the SMTP connection (`KLAXON_SMTP_TLS`): `opportunistic` (the default) upgrades
/// whenever the server offers it, `require` refuses a server that does not, `off` never asks.
/// Whenever TLS is used the server's certificate is verified (system roots plus
/// `KLAXON_TLS_EXTRA_CA_FILE`); a failed verification fails the attempt, never falls back to clear.
public enum SMTPTLSMode: String, Sendable, CaseIterable {
    case require, opportunistic, off
}

public struct SMTPConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var from: String
    public var heloName: String = "klaxon"
    public var tls: SMTPTLSMode = .opportunistic
    /// PEM CA trusted besides the system's roots ("" for none).
    public var extraCAFile = ""

    public init(host: String, port: Int, from: String) {
        self.host = host
        self.port = port
        self.from = from
    }
}

/// Email over SMTP: EHLO, STARTTLS when offered (see `SMTPTLSMode`), MAIL FROM, RCPT TO, DATA,
/// QUIT, with a timeout on the whole exchange. The message is plain UTF-8 text a person can act on.
public struct EmailChannel: DeliveryChannel {
    let configuration: SMTPConfiguration
    let timeout: TimeAmount
    /// Made once: the system's roots plus the extra CA (an unreadable CA file fails each attempt, naming it).
    let tlsContext: Result<NIOSSLContext, any Error>

    public init(configuration: SMTPConfiguration, timeout: TimeAmount) {
        self.configuration = configuration
        self.timeout = timeout
        tlsContext = Result {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if !configuration.extraCAFile.isEmpty { tls.additionalTrustRoots = [.file(configuration.extraCAFile)] }
            return try NIOSSLContext(configuration: tls)
        }
    }

    public func deliver(to address: String, idempotencyKey: String, message: WebhookMessage) async throws {
        try await transmit(to: address, data: Self.render(message, from: configuration.from, to: address, idempotencyKey: idempotencyKey))
    }

    public func send(_ notice: Notice, to address: String) async throws {
        try await transmit(to: address, data: Self.render(notice, from: configuration.from, to: address))
    }

    /// One SMTP exchange, within `timeout`.
    private func transmit(to address: String, data: String) async throws {
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
            let server = "\(configuration.host):\(configuration.port)"
            let tlsFailure = TLSFailureRecorder()
            /// One reply (continuation lines "250-…" end with "250 …"); checks its code and
            /// returns its lines' texts (after the code).
            @discardableResult
            func expect(_ codes: Set<Int>, after step: String) async throws -> [String] {
                var texts: [String] = []
                while true {
                    let next: ByteBuffer?
                    do {
                        next = try await lines.next()
                    } catch {
                        throw tlsFailure.described(server) ?? error
                    }
                    guard let line = next else {
                        if let failure = tlsFailure.described(server) { throw failure }
                        throw DeliveryError(description: "SMTP server closed the connection after \(step)")
                    }
                    let text = String(buffer: line)
                    guard text.count >= 3, let code = Int(text.prefix(3)) else {
                        throw DeliveryError(description: "SMTP server sent \"\(text)\" after \(step)")
                    }
                    texts.append(String(text.dropFirst(4)))
                    if text.count > 3, text[text.index(text.startIndex, offsetBy: 3)] == "-" { continue }
                    guard codes.contains(code) else { throw DeliveryError(description: "SMTP \(step) refused: \(text)") }
                    return texts
                }
            }
            func send(_ line: String) async throws {
                do {
                    try await outbound.write(ByteBuffer(string: line + "\r\n"))
                } catch {
                    throw tlsFailure.described(server) ?? error
                }
            }
            try await expect([220], after: "connect")
            try await send("EHLO \(configuration.heloName)")
            let extensions = try await expect([250], after: "EHLO")
            let offersTLS = extensions.contains { $0.uppercased().split(separator: " ").first == "STARTTLS" }
            switch (configuration.tls, offersTLS) {
            case (.off, _), (.opportunistic, false):
                break
            case (.require, false):
                throw DeliveryError(description: "SMTP server \(server) does not offer STARTTLS and KLAXON_SMTP_TLS=require: nothing sent in clear")
            case (_, true):
                try await send("STARTTLS")
                try await expect([220], after: "STARTTLS")
                let context: NIOSSLContext
                do { context = try tlsContext.get() } catch {
                    throw DeliveryError(description: "SMTP TLS cannot be set up (KLAXON_TLS_EXTRA_CA_FILE?): \(error)")
                }
                // TLS from here on, under the line decoder; the server's name (or IP) is verified.
                let name = RPCClient.hostname(configuration.host), raw = channel.channel
                try await raw.eventLoop.submit {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: name)
                    try raw.pipeline.syncOperations.addHandler(tls, position: .first)
                    try raw.pipeline.syncOperations.addHandler(tlsFailure, position: .after(tls))
                }.get()
                try await send("EHLO \(configuration.heloName)")
                try await expect([250], after: "EHLO over TLS")
            }
            try await send("MAIL FROM:<\(configuration.from)>")
            try await expect([250], after: "MAIL FROM")
            try await send("RCPT TO:<\(address)>")
            try await expect([250, 251], after: "RCPT TO")
            try await send("DATA")
            try await expect([354], after: "DATA")
            try await outbound.write(ByteBuffer(string: data))
            try await expect([250], after: "the message")
            try await send("QUIT")
            _ = try? await expect([221], after: "QUIT")
        }
    }

    /// Keeps the TLS error (a certificate that does not verify, a failed handshake) that ended the
    /// connection, so the attempt's failure names it rather than "connection closed".
    final class TLSFailureRecorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        private let failure = NIOLockedValueBox<(any Error)?>(nil)

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            failure.withLockedValue { $0 = $0 ?? error }
            context.fireErrorCaught(error)
        }

        func described(_ server: String) -> DeliveryError? {
            failure.withLockedValue { $0 }.map {
                DeliveryError(description: "SMTP over TLS with \(server) failed (certificate verification or handshake): \($0)")
            }
        }
    }

    /// Headers and body, CRLF line ends, dot-stuffed, ending with the lone dot.
    static func render(_ message: WebhookMessage, from: String, to: String, idempotencyKey: String) -> String {
        let incident = message.incident
        let subject = "[\(incident.urgency.uppercased())] #\(incident.number) \(incident.title)"
        let why = message.reason.replacingOccurrences(of: "_", with: " ")
        var body = [
            "Incident #\(incident.number): \(incident.title)",
            "Service: \(incident.service.name)",
            "Urgency: \(incident.urgency)",
            "Status: \(incident.status)",
            "Why you: \(why)",
        ]
        if let url = incident.htmlURL { body.append("Open: \(url)") }
        body.append("")
        body.append("Notification \(message.notificationID) for \(message.user.name), sent \(message.sentAt).")
        let boundary = "klaxon-\(message.notificationID)"
        let headers = [
            "From: Klaxon <\(from)>",
            "To: <\(to)>",
            "Subject: \(encodedHeader(subject))",
            "Date: \(dateHeader())",
            "Message-ID: <\(message.notificationID)@klaxon>",
            "X-Klaxon-Notification-Id: \(idempotencyKey)",
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
        ]
        // Plain text first, HTML last (the richest part a client can show).
        let html = Data(Self.html(message, why: why).utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let lines = headers + [""]
            + ["--\(boundary)", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", ""] + body
            + ["", "--\(boundary)", "Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64", "", html, "--\(boundary)--"]
        return lines.map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n") + "\r\n.\r\n"
    }

    /// A code or test page: plain text, one part.
    static func render(_ notice: Notice, from: String, to: String) -> String {
        let headers = [
            "From: Klaxon <\(from)>",
            "To: <\(to)>",
            "Subject: \(encodedHeader(notice.subject))",
            "Date: \(dateHeader())",
            "Message-ID: <\(notice.id)@klaxon>",
            "X-Klaxon-Notice: \(notice.kind)",
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        let lines = headers + [""] + notice.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return lines.map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n") + "\r\n.\r\n"
    }

    static func dateHeader() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: Date())
    }

    /// The HTML part: the same facts, and the one-tap link as a button (mail clients do not run
    /// forms or scripts: the page it opens has Acknowledge and Resolve).
    static func html(_ message: WebhookMessage, why: String) -> String {
        let incident = message.incident
        var html = "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;max-width:40rem\">"
        html += "<h2 style=\"margin:0 0 8px\">#\(incident.number) \(Markup.escape(incident.title))</h2>"
        html += "<p><b>\(Markup.escape(incident.urgency)) urgency</b> · \(Markup.escape(incident.status)) · \(Markup.escape(incident.service.name))<br>Why you: \(Markup.escape(why))</p>"
        if let url = incident.htmlURL {
            html += "<p><a href=\"\(Markup.escape(url))\" style=\"display:inline-block;padding:12px 20px;background:#ef6c00;color:#fff;"
                + "text-decoration:none;border-radius:6px;font-weight:600\">Open incident #\(incident.number): acknowledge or resolve</a></p>"
        }
        html += "<p style=\"color:#666;font-size:12px\">Notification \(Markup.escape(message.notificationID)) for \(Markup.escape(message.user.name)), sent \(Markup.escape(message.sentAt)).</p>"
        return html + "</body></html>"
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
                var smtp = SMTPConfiguration(host: $0.host, port: $0.port, from: config.smtpFrom)
                smtp.tls = SMTPTLSMode(rawValue: config.smtpTLS) ?? .opportunistic
                smtp.extraCAFile = config.tlsExtraCAFile
                return EmailChannel(configuration: smtp, timeout: timeout)
            }
        },
        notConfigured: "no SMTP server configured: set KLAXON_SMTP_SERVER")
}
