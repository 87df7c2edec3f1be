import Foundation
import KlaxonTestSupport
import Shared
import Testing

/// PagerDuty change events (issue 27, point 6), sent by PagerDuty's own Python client
/// (`EventsApiV2Client.send_change_event`, over https): stored per service, listed by
/// `klaxon service changes`, and the ones in the window before an incident (4 hours by default)
/// travel with it — in `klaxon incident show` and in the page's webhook JSON.
@Suite struct ChangeEventTests {
    @Test func aDeployJustBeforeAnIncidentTravelsWithIt() async throws {
        let pki = try TestPKI.make()
        let pipeline = try await TLSTests.tlsPipeline(pki)
        let checkout = try await pipeline.seed(users: ["Alice"])
        let payments = try await pipeline.seed(users: ["Bob"])
        let formatter = ISO8601DateFormatter()
        let tenMinutesAgo = formatter.string(from: Date().addingTimeInterval(-600))
        let fiveHoursAgo = formatter.string(from: Date().addingTimeInterval(-5 * 3600))
        let script = """
            import ssl, sys, pagerduty
            base, ca, checkout, payments, recent, old = sys.argv[1:7]
            verify = ssl.create_default_context(cafile=ca)
            client = pagerduty.EventsApiV2Client(checkout, base_url=base, verify=verify)
            client.send_change_event(
                payload={"summary": "Deploy checkout v1.2.3", "source": "github-actions", "timestamp": recent,
                         "custom_details": {"sha": "abc123"}},
                links=[{"href": "https://github.example/checkout/pull/42", "text": "PR 42"}])
            client.send_change_event(payload={"summary": "Deploy checkout v1.2.2", "source": "github-actions", "timestamp": old})
            pagerduty.EventsApiV2Client(payments, base_url=base, verify=verify).send_change_event(
                payload={"summary": "Payments config change", "source": "terraform"})
            try:
                client.send_change_event(payload={"source": "no summary"})
                print("accepted a change without a summary")
            except Exception as error:
                print("refused:", error)
            print("sent")
            """
        let port = pipeline.ingestHTTPPort
        let arguments = ["-c", script, "https://127.0.0.1:\(port)", pki.caFile, checkout.routingKey, payments.routingKey, tenMinutesAgo, fiveHoursAgo]
        let run = try await offCooperativePool { try ThirdPartyClientTests.runBlocking("python3", arguments) }
        #expect(run.status == 0 && run.output.contains("sent"), "\(run.output)")
        #expect(run.output.contains("refused:") && run.output.contains("400"), "\(run.output)")

        // Listed per service, newest first.
        let cli = try KlaxonCLI(address: "127.0.0.1:\(pipeline.config.assignmentListen.port)", token: pipeline.adminToken)
        let tls = ["KLAXON_TLS_CA_FILE": pki.caFile]
        let listed = try await cli.run(["service", "changes", String(checkout.serviceID)], environment: tls)
        #expect(listed.status == 0, "\(listed.err)")
        let rows = listed.lines.filter { $0.contains("Deploy checkout") }
        #expect(rows.count == 2 && rows[0].contains("v1.2.3") && rows[0].contains("https://github.example/checkout/pull/42"), "\(listed.out)")
        #expect(!listed.out.contains("Payments"))

        // An incident on Checkout: the deploy ten minutes before it goes with its page; the one five
        // hours before (outside the window) and Payments' change do not.
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(checkout.routingKey, dedupKey: "after-deploy"))
        await ingest.close()
        let pages = await pipeline.sink.waitForRequests(1, timeout: .seconds(15))
        let changes = pages.first?.webhook?.incident.recentChanges ?? []
        #expect(changes.map(\.summary) == ["Deploy checkout v1.2.3"], "\(String(describing: pages.first.map { String(decoding: $0.body, as: UTF8.self) }))")
        #expect(changes.first?.links == ["https://github.example/checkout/pull/42"] && changes.first?.source == "github-actions")
        let shown = try await cli.run(["incident", "show", String(created.incidentID)], environment: tls)
        #expect(shown.out.contains("recent changes") && shown.out.contains("Deploy checkout v1.2.3") && !shown.out.contains("v1.2.2"), "\(shown.out)")
        await pipeline.shutdown()
    }
}
