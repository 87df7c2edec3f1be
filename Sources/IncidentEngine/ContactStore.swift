import KlaxonDomain
import Shared

/// Verifying contact methods and testing them (PRODUCT.md, "Reaching people"): the codes, the
/// messages that carry them and test pages (`contact_notices`, sent by Notifier), and what
/// `klaxon user show` says of each method. The rules are `ContactVerification`'s; only a code's
/// hash is stored, and its message's text is blanked once sent.
public enum ContactStore {
    public struct Method: Sendable {
        public var id: Int64
        public var userID: Int64
        public var type: String
        public var address: String
        public var verified: Bool
    }

    public static func method(_ connection: PGConnection, id: Int64, lock: Bool = false) throws -> Method? {
        let rows = try connection.query(
            "SELECT id, user_id, type, address, verified_at_ms IS NOT NULL AS verified FROM contact_methods WHERE id = $1\(lock ? " FOR UPDATE" : "")",
            [id])
        guard !rows.isEmpty else { return nil }
        return Method(
            id: id, userID: rows.int64(0, "user_id")!, type: rows.string(0, "type")!, address: rows.string(0, "address")!,
            verified: rows.bool(0, "verified")!)
    }

    /// After a method is created or its address changes: verified at once when its kind needs no
    /// code or it is pre-verified (an admin's `verified: true`), otherwise unverified with a code
    /// on its way. Returns whether a code was sent.
    @discardableResult
    public static func addressSet(_ connection: PGConnection, methodID: Int64, type: String, preVerified: Bool, now: Millis) throws -> Bool {
        if preVerified || !ContactVerification.needsCode(type) {
            try connection.query("UPDATE contact_methods SET verified_at_ms = $2 WHERE id = $1", [methodID, now])
            try connection.query("DELETE FROM contact_verifications WHERE contact_method_id = $1", [methodID])
            return false
        }
        try connection.query("UPDATE contact_methods SET verified_at_ms = NULL WHERE id = $1", [methodID])
        try issueCode(connection, methodID: methodID, now: now)
        return true
    }

    /// A new code for the method (replacing any other), and the message carrying it.
    public static func issueCode(_ connection: PGConnection, methodID: Int64, now: Millis) throws {
        var generator = SystemRandomNumberGenerator()
        let code = String(UInt32.random(in: 0..<1_000_000, using: &generator)).leftPadded(to: ContactVerification.codeDigits)
        let pending = ContactVerification.Pending.issued(at: now)
        try connection.query(
            """
            INSERT INTO contact_verifications (contact_method_id, code_hash, sent_at_ms, expires_at_ms, tries_left)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (contact_method_id) DO UPDATE SET code_hash = $2, sent_at_ms = $3, expires_at_ms = $4, tries_left = $5
            """, [methodID, hash(methodID, code), pending.sentAt, pending.expiresAt, pending.triesLeft])
        // Spoken digit by digit, twice.
        let digits = code.map(String.init).joined(separator: ", ")
        try insertNotice(
            connection, methodID: methodID, kind: "verification", batch: RandomID.uuid(), subject: "Klaxon verification code \(code)",
            body: "Klaxon: your verification code is \(code). It expires in 10 minutes. Confirm it with: klaxon contact verify \(methodID) \(code)",
            spoken: "This is Klaxon. Your verification code is \(digits). Again: \(digits).", maxAttempts: 3, now: now)
    }

    static func hash(_ methodID: Int64, _ code: String) -> [UInt8] { Secrets.sha256("contact-method-\(methodID):\(code)") }

    static func pending(_ connection: PGConnection, methodID: Int64, lock: Bool) throws -> ContactVerification.Pending? {
        let rows = try connection.query(
            "SELECT sent_at_ms, expires_at_ms, tries_left FROM contact_verifications WHERE contact_method_id = $1\(lock ? " FOR UPDATE" : "")",
            [methodID])
        guard !rows.isEmpty else { return nil }
        return ContactVerification.Pending(
            sentAt: rows.int64(0, "sent_at_ms")!, expiresAt: rows.int64(0, "expires_at_ms")!, triesLeft: rows.int(0, "tries_left")!)
    }

    /// Checks `code` against the method's pending one (under its row lock, so concurrent tries
    /// each cost one): right → verified; wrong → one try fewer. Already verified → `.verified`.
    public static func verify(_ connection: PGConnection, methodID: Int64, code: String, now: Millis) throws -> ContactVerification.Verdict {
        guard let method = try method(connection, id: methodID, lock: true) else {
            throw RPCError(.notFound, "contact method \(methodID) does not exist")
        }
        if method.verified { return .verified }
        let pending = try pending(connection, methodID: methodID, lock: true)
        let stored = try connection.query("SELECT code_hash FROM contact_verifications WHERE contact_method_id = $1", [methodID]).bytes(0, "code_hash")
        let matches = stored.map { Secrets.constantTimeEquals($0, hash(methodID, code)) } ?? false
        let verdict = ContactVerification.check(matches: matches, pending: pending, now: now)
        switch verdict {
        case .verified:
            try connection.query("UPDATE contact_methods SET verified_at_ms = $2 WHERE id = $1", [methodID, now])
            try connection.query("DELETE FROM contact_verifications WHERE contact_method_id = $1", [methodID])
        case let .wrong(left):
            try connection.query("UPDATE contact_verifications SET tries_left = $2 WHERE contact_method_id = $1", [methodID, left])
        case .expired, .exhausted, .noCode:
            break
        }
        return verdict
    }

    /// A new code on request: refused while the method is verified or within a minute of the last.
    public static func resend(_ connection: PGConnection, methodID: Int64, now: Millis) throws {
        guard let method = try method(connection, id: methodID, lock: true) else {
            throw RPCError(.notFound, "contact method \(methodID) does not exist")
        }
        guard ContactVerification.needsCode(method.type) else {
            throw RPCError(.failedPrecondition, "contact method \(methodID) is a \(method.type): it needs no code")
        }
        guard !method.verified else { throw RPCError(.failedPrecondition, "contact method \(methodID) is already verified") }
        if let until = ContactVerification.resendRefusedUntil(last: try pending(connection, methodID: methodID, lock: true), now: now) {
            throw RPCError(.resourceExhausted, "a code was sent to contact method \(methodID) less than a minute ago: ask again in \((until - now + 999) / 1000) s")
        }
        try issueCode(connection, methodID: methodID, now: now)
    }

    static func insertNotice(
        _ connection: PGConnection, methodID: Int64, kind: String, batch: String, subject: String, body: String, spoken: String,
        maxAttempts: Int, now: Millis
    ) throws {
        try connection.query(
            """
            INSERT INTO contact_notices (id, contact_method_id, kind, batch, subject, body, spoken, max_attempts, due_at_ms, created_at_ms)
            VALUES ($1::uuid, $2, $3, $4::uuid, $5, $6, $7, $8, $9, $9)
            """, [RandomID.uuid(), methodID, kind, batch, subject, body, spoken, maxAttempts, now])
    }

    // MARK: Test pages

    /// A test page to each of the user's methods: one batch, one attempt each (a test shows what
    /// happens, it does not hide a flaky endpoint). Unverified methods are not sent to; the
    /// outcomes say so. Returns the batch id.
    public static func testPage(_ connection: PGConnection, userID: Int64, now: Millis) throws -> String {
        let user = try connection.query("SELECT name FROM users WHERE id = $1", [userID])
        guard let name = user.string(0, "name") else { throw RPCError(.notFound, "user \(userID) does not exist") }
        let methods = try connection.query(
            "SELECT id, type FROM contact_methods WHERE user_id = $1 AND (verified_at_ms IS NOT NULL OR NOT (type = ANY($2::text[]))) ORDER BY id",
            [userID, PGArray(["sms", "phone", "email"])])
        let batch = RandomID.uuid()
        for row in 0..<methods.count {
            let id = methods.int64(row, "id")!, type = methods.string(row, "type")!
            try insertNotice(
                connection, methodID: id, kind: "test", batch: batch, subject: "Klaxon test page",
                body: "Klaxon test page for \(name) through contact method \(id) (\(type)). If you read this, pages reach you here; nothing to do.",
                spoken: "This is a Klaxon test page for \(name). If you hear this, calls reach you. Nothing to do. Goodbye.", maxAttempts: 1, now: now)
        }
        return batch
    }

    /// Each of the user's methods with its test page's outcome in `batch` (unverified: skipped).
    public static func testOutcomes(_ connection: PGConnection, userID: Int64, batch: String) throws -> [TestPageOutcome] {
        let rows = try connection.query(
            """
            SELECT c.id, c.type, c.address, c.verified_at_ms IS NOT NULL AS verified, n.status, n.attempts, n.last_error
            FROM contact_methods c LEFT JOIN contact_notices n ON n.contact_method_id = c.id AND n.batch = $2::uuid
            WHERE c.user_id = $1 ORDER BY c.id
            """, [userID, batch])
        return (0..<rows.count).map { row in
            let id = rows.uint64(row, "id")!, type = rows.string(row, "type")!
            var outcome = TestPageOutcome(
                contactMethodID: id, type: type, address: AddressMask.mask(rows.string(row, "address")!, channel: type),
                status: rows.string(row, "status") ?? "skipped", detail: rows.string(row, "last_error") ?? "",
                attempts: UInt32(rows.int(row, "attempts") ?? 0))
            if rows.string(row, "status") == nil {
                outcome.detail = rows.bool(row, "verified")! ? "added after the test began" :
                    "not verified: confirm its code with klaxon contact verify \(id) CODE (a new code: klaxon contact send-code \(id))"
            }
            return outcome
        }
    }

    public static func testPending(_ connection: PGConnection, batch: String) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM contact_notices WHERE batch = $1::uuid AND status = 'pending'", [batch]).int(0, "n")!
    }

    // MARK: What `klaxon user show` says

    /// Fills in each method's verification state and failing streak.
    public static func annotate(_ connection: PGConnection, _ methods: inout [ContactMethodMessage]) throws {
        guard !methods.isEmpty else { return }
        let ids = methods.map { Int64($0.id) }
        let state = try connection.query(
            """
            SELECT c.id, c.verified_at_ms IS NOT NULL AS verified, v.expires_at_ms, v.tries_left,
                   (SELECT n.last_error FROM contact_notices n
                    WHERE n.contact_method_id = c.id AND n.kind = 'verification' AND n.created_at_ms >= v.sent_at_ms AND n.status = 'failed'
                    ORDER BY n.created_at_ms DESC LIMIT 1) AS not_delivered
            FROM contact_methods c LEFT JOIN contact_verifications v ON v.contact_method_id = c.id
            WHERE c.id = ANY($1::bigint[])
            """, [PGArray(ids)])
        var byID: [UInt64: Int] = [:]
        for row in 0..<state.count { byID[state.uint64(row, "id")!] = row }
        let recent = try connection.query(
            """
            SELECT m.id, r.status, r.last_error FROM unnest($1::bigint[]) AS m(id)
            CROSS JOIN LATERAL (SELECT status, last_error, finished_at_ms FROM notifications n
                                WHERE n.contact_method_id = m.id AND n.finished_at_ms IS NOT NULL AND n.status IN ('sent', 'failed')
                                ORDER BY n.finished_at_ms DESC LIMIT $2) r
            ORDER BY m.id, r.finished_at_ms DESC
            """, [PGArray(ids), ContactVerification.failingAfter])
        for index in methods.indices {
            let id = methods[index].id
            if let row = byID[id] {
                methods[index].verified = state.bool(row, "verified")!
                methods[index].codeExpiresAtMs = state.int64(row, "expires_at_ms") ?? 0
                methods[index].codeTriesLeft = UInt32(state.int(row, "tries_left") ?? 0)
                methods[index].codeNotDelivered = state.string(row, "not_delivered") ?? ""
            }
            let mine = (0..<recent.count).filter { recent.uint64($0, "id") == id }
            let outcomes = mine.map { recent.string($0, "status")! }
            methods[index].failedInARow = UInt32(ContactVerification.failuresInARow(outcomes))
            if methods[index].failedInARow > 0, let first = mine.first { methods[index].lastFailure = recent.string(first, "last_error") ?? "" }
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
