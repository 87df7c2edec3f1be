import Foundation
import KlaxonDomain
import KlaxonTestSupport
import NIOCore
import NotifierService
import Shared
import Testing

/// Pages never go to link-local or cloud-metadata addresses unless allowed (issue 24, point 3):
/// whoever may add a webhook must not make Klaxon fetch a cloud's instance credentials.
@Suite(.serialized) struct OutboundGuardTests {
    /// A page as a channel gets it.
    static func page(title: String) -> WebhookMessage {
        let snapshot = IncidentSnapshot(
            incidentID: 9, number: 9, title: title, status: .triggered, urgency: .high, serviceID: 1, serviceName: "s",
            severity: "critical", dedupKey: "k", createdAtMs: 0, atMs: 0)
        return WebhookMessage(
            notificationID: "n", reason: .assigned, isSnapshot: true, incident: snapshot, user: .init(id: 1, name: "A", email: "a@x.io"),
            rule: .init(id: 1, startDelaySeconds: 0), sentAt: 0)
    }

    @Test(arguments: ["169.254.169.254", "169.254.0.1", "fe80::1", "[fe80::1]", "::ffff:169.254.169.254"])
    func linkLocalAddressesAreRefused(_ host: String) async {
        let why = await OutboundGuard.refusal(host: host)
        #expect(why?.contains("link-local") == true, "\(host): \(why ?? "allowed")")
    }

    @Test(arguments: ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "2001:db8::1", "localhost", "name.invalid"])
    func otherDestinationsPass(_ host: String) async {
        #expect(await OutboundGuard.refusal(host: host) == nil, "\(host)")
    }

    /// A webhook page to the metadata address fails at once, for good, naming why and the
    /// setting that allows it (and nothing is sent).
    @Test func aWebhookToTheMetadataAddressIsAPermanentFailure() async throws {
        let message = Self.page(title: "x")
        do {
            try await WebhookChannel(timeout: .seconds(2)).deliver(
                to: "http://169.254.169.254/latest/meta-data/iam/security-credentials/", idempotencyKey: "n", message: message)
            Issue.record("the page was sent to the metadata address")
        } catch let error as DeliveryError {
            #expect(error.permanent)
            #expect(error.description.contains("169.254.169.254 is a link-local address")
                && error.description.contains("KLAXON_ALLOW_LINK_LOCAL_DESTINATIONS=true"), "\(error)")
        }
    }
}
