import KlaxonDomain
import KlaxonTestSupport
import NotifierService
import Shared
import Testing

@Suite struct PeopleTests {
    @Test func usersContactMethodsAndRules() async throws {
        let pipeline = try await Pipeline(start: [.notifier])
        let people = pipeline.client(.notifier)
        let bad = await people.failure(People.CreateUser, UserMessage(name: "", email: "nope", timeZone: "Nowhere/Else", role: "boss"))
        #expect(bad?.status.violations.map(\.field) == ["name", "email", "time_zone", "role"])
        let alice: UserMessage = try await people.call(People.CreateUser, UserMessage(name: "Alice", email: "alice@example.com", timeZone: "Europe/Berlin"))
        #expect(alice.role == "responder")
        let bob: UserMessage = try await people.call(People.CreateUser, UserMessage(name: "Bob", email: "bob@example.com"))

        // Address formats per type.
        for (type, address) in [("webhook", "ftp://x"), ("slack", "not a url"), ("email", "alice.example.com"), ("sms", "0170 1234567"),
                                ("phone", "+12"), ("push", ""), ("pager", "x")] {
            let error = await people.failure(People.CreateContactMethod, ContactMethodMessage(userID: alice.id, type: type, address: address))
            #expect(error?.code == .invalidArgument, "\(type) \(address)")
        }
        let sms: ContactMethodMessage = try await people.call(
            People.CreateContactMethod, ContactMethodMessage(userID: alice.id, type: "sms", address: "+49 170 1234567", label: "mobile"))
        let hook: ContactMethodMessage = try await people.call(
            People.CreateContactMethod, ContactMethodMessage(userID: alice.id, type: "webhook", address: "https://hooks.example/alice"))
        let bobsMail: ContactMethodMessage = try await people.call(
            People.CreateContactMethod, ContactMethodMessage(userID: bob.id, type: "email", address: "bob@example.com"))

        // Rules: the contact method must be the user's own; at most 20.
        let foreign = await people.failure(People.CreateNotificationRule,
            NotificationRuleMessage(userID: alice.id, contactMethodID: bobsMail.id, startDelaySeconds: 0, urgency: .high))
        #expect(foreign?.status.violations.map(\.field) == ["contact_method_id"])
        for delay in 0..<20 {
            let _: NotificationRuleMessage = try await people.call(People.CreateNotificationRule, NotificationRuleMessage(
                userID: alice.id, contactMethodID: delay % 2 == 0 ? sms.id : hook.id, startDelaySeconds: UInt32(delay * 60), urgency: .high))
        }
        let twentyFirst = await people.failure(People.CreateNotificationRule,
            NotificationRuleMessage(userID: alice.id, contactMethodID: sms.id, startDelaySeconds: 0, urgency: .low))
        #expect(twentyFirst?.code == .failedPrecondition)
        let noUrgency = await people.failure(People.CreateNotificationRule,
            NotificationRuleMessage(userID: bob.id, contactMethodID: bobsMail.id, startDelaySeconds: 0, urgency: nil))
        #expect(noUrgency?.status.violations.map(\.field) == ["urgency"])

        let fetched: UserMessage = try await people.call(People.GetUser, IDRequest(id: alice.id))
        #expect(fetched.contactMethods.map(\.id) == [sms.id, hook.id])
        #expect(fetched.notificationRules.count == 20)
        #expect(fetched.timeZone == "Europe/Berlin")

        // No SMTP server here: Bob's code cannot be sent, and his user says why.
        let undelivered = await eventually(timeout: .seconds(10)) {
            let bob: UserMessage? = try? await people.call(People.GetUser, IDRequest(id: bob.id))
            return bob?.contactMethods.first?.codeNotDelivered.contains("no SMTP server configured") == true
        }
        #expect(undelivered, "the undelivered code is not reported")
        #expect(!bobsMail.verified)

        // A contact method used by a rule cannot be deleted; an unused one can.
        #expect(await people.failure(People.DeleteContactMethod, IDRequest(id: sms.id))?.code == .failedPrecondition)
        let _: Empty = try await people.call(People.DeleteContactMethod, IDRequest(id: bobsMail.id))
        #expect(await people.failure(People.DeleteContactMethod, IDRequest(id: bobsMail.id))?.code == .notFound)
        let list: UserListMessage = try await people.call(People.ListUsers, Empty())
        #expect(list.users.map(\.name) == ["Alice", "Bob"])
        await people.close()
        await pipeline.shutdown()
    }

    @Test func incidentNotificationsWithTheirState() async throws {
        let pipeline = try await Pipeline()
        let service = try await pipeline.seed(users: ["Alice"], ruleDelays: [0, 600])
        let ingest = pipeline.client(.ingest)
        let created: EventResult = try await ingest.call(Ingest.SendEvent, Pipeline.trigger(service.routingKey))
        #expect(await pipeline.sink.waitForRequests(1, timeout: .seconds(10)).count == 1)
        let notifier = pipeline.client(.notifier)
        let listed = try await eventually(timeout: .seconds(5)) {
            let list: NotificationListMessage = try await notifier.call(People.ListIncidentNotifications, IDRequest(id: created.incidentID))
            return list.notifications.map(\.status) == ["sent", "pending"]
        }
        #expect(listed)
        let list: NotificationListMessage = try await notifier.call(People.ListIncidentNotifications, IDRequest(id: created.incidentID))
        #expect(list.notifications.map(\.minuteZero) == [true, false])
        #expect(list.notifications.allSatisfy { $0.address == "http://127.0.0.1:\(pipeline.sink.port)/…" && $0.reason == .assigned })
        #expect(list.notifications.first?.attempts == 1)
        #expect(list.notifications.last.map { $0.dueAtMs - list.notifications[0].dueAtMs } == 600_000)
        await ingest.close()
        await notifier.close()
        await pipeline.shutdown()
    }
}
