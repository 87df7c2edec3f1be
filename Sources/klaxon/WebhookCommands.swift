import ArgumentParser
import Foundation
import Shared

struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook", abstract: "Outbound webhooks: create, list, delete, enable, deliveries, redeliver.",
        discussion: """
            Subscriptions receive PagerDuty v3-shaped events ({"event": {id, event_type, resource_type, occurred_at, agent, \
            client, data}}) signed with X-PagerDuty-Signature (v1=hex HMAC-SHA256 of the body, keyed by the secret) and \
            Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature), at least once with a stable id, \
            in order per incident; retried on timeout, 5xx and 429 for 48 h; other 4xx are dropped, and 3 drops in a row \
            disable the subscription (enable brings it back).
            """,
        subcommands: [Create.self, List.self, Delete.self, Enable.self, Deliveries.self, Redeliver.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A new subscription; prints its secret once.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Where events are POSTed.") var url: String
        @Option(name: .customLong("event"), help: "An event type (repeat; default every type): incident.triggered, incident.acknowledged, …")
        var events: [String] = []
        @Option(name: .customLong("service"), help: "Only this service's incidents (id or name; repeat).") var services: [String] = []
        @Option(name: .customLong("header"), help: "A header sent with every delivery: Name=value (repeat).") var headers: [String] = []
        @Option(help: "What it is for.") var description: String = ""
        @Option(help: "A user (id or email) told on their contact methods if the subscription is disabled.") var owner: String?
        func run() async throws {
            var ownerID: UInt64 = 0
            if let owner {
                if let id = UInt64(owner) { ownerID = id } else {
                    let users: UserListMessage = try await client.call(People.ListUsers, Empty())
                    guard let user = users.users.first(where: { $0.email.lowercased() == owner.lowercased() }) else {
                        throw CLIError(code: CLIExit.refused, message: "not found: no user has the email \(owner)")
                    }
                    ownerID = user.id
                }
            }
            var ids: [UInt64] = []
            for service in services { ids.append(try await serviceID(service, client: client)) }
            var map: [String: String] = [:]
            for header in headers {
                let parts = header.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw CLIError(code: CLIExit.usage, message: "--header \(header): use Name=value") }
                map[parts[0]] = parts[1]
            }
            let created: WebhookSubscription = try await client.call(
                Admin.CreateWebhook, WebhookSubscription(url: url, description: description, eventTypes: events, serviceIDs: ids, headers: map, ownerUserID: ownerID))
            if client.json { return print(JSONOut.text(created)) }
            print("webhook \(created.id) → \(created.url)")
            print("secret \(created.secret)  (shown this once: verify X-PagerDuty-Signature or webhook-signature with it)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Subscriptions: enabled or why disabled, pending deliveries.")
        @OptionGroup var client: ClientOptions
        func run() async throws {
            let list: WebhookList = try await client.call(Admin.ListWebhooks, Empty())
            if client.json { return print(JSONOut.text(list)) }
            var table = Table("ID", "URL", "EVENTS", "SERVICES", "STATE", "PENDING")
            for webhook in list.webhooks {
                table.add(
                    String(webhook.id), webhook.url, webhook.eventTypes.isEmpty ? "all" : webhook.eventTypes.joined(separator: ","),
                    webhook.serviceIDs.isEmpty ? "all" : webhook.serviceIDs.map(String.init).joined(separator: ","),
                    webhook.enabled ? "enabled" : "DISABLED: \(webhook.disabledReason)", String(webhook.pending))
            }
            table.print(empty: "no webhook subscriptions")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a subscription and its delivery log.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Subscription id.") var id: UInt64
        func run() async throws {
            let _: Empty = try await client.call(Admin.DeleteWebhook, AdminIDRequest(id: id))
            print("deleted webhook \(id)")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a subscription disabled after 3 drops (its pending deliveries go out).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Subscription id.") var id: UInt64
        func run() async throws {
            let enabled: WebhookSubscription = try await client.call(Admin.EnableWebhook, AdminIDRequest(id: id))
            print("webhook \(enabled.id) enabled; \(enabled.pending) pending")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A subscription's delivery log, newest first.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Subscription id.") var id: UInt64
        @Option(help: "How many (default 20, at most 500).") var limit: UInt32 = 20
        func run() async throws {
            let reply: ListWebhookDeliveriesReply = try await client.call(
                Admin.ListWebhookDeliveries, ListWebhookDeliveriesRequest(subscriptionID: id, limit: limit))
            if client.json { return print(JSONOut.text(reply)) }
            var table = Table("ID", "CREATED", "EVENT", "INCIDENT", "STATUS", "ATTEMPTS", "LAST ERROR")
            for delivery in reply.deliveries {
                table.add(
                    String(delivery.id), CLITime.text(delivery.createdAtMs), delivery.eventType, String(delivery.incidentID), delivery.status,
                    String(delivery.attempts), delivery.lastError)
            }
            table.print(empty: "no deliveries")
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a delivered or dropped event again (same event id).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Delivery id (klaxon webhook deliveries).") var id: UInt64
        func run() async throws {
            let delivery: WebhookDelivery = try await client.call(Admin.RedeliverWebhook, AdminIDRequest(id: id))
            print("delivery \(delivery.id) (\(delivery.eventType), event \(delivery.eventID)) is pending again")
        }
    }
}
