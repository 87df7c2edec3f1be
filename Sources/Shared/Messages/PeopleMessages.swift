import CProtobufC
import KlaxonDomain
import KlaxonProto

/// Wire forms of `klaxon.notifier.v1.People`.
public enum PeopleMethod {
    public static let createUser = "klaxon.notifier.v1.People/CreateUser"
    public static let getUser = "klaxon.notifier.v1.People/GetUser"
    public static let listUsers = "klaxon.notifier.v1.People/ListUsers"
    public static let deleteUser = "klaxon.notifier.v1.People/DeleteUser"
    public static let createContactMethod = "klaxon.notifier.v1.People/CreateContactMethod"
    public static let deleteContactMethod = "klaxon.notifier.v1.People/DeleteContactMethod"
    public static let createRule = "klaxon.notifier.v1.People/CreateNotificationRule"
    public static let deleteRule = "klaxon.notifier.v1.People/DeleteNotificationRule"
    public static let listIncidentNotifications = "klaxon.notifier.v1.People/ListIncidentNotifications"
}

public struct ContactMethodMessage: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var userID: UInt64
    public var type: String
    public var address: String
    public var label: String
    public init(id: UInt64 = 0, userID: UInt64, type: String, address: String, label: String = "") {
        self.id = id
        self.userID = userID
        self.type = type
        self.address = address
        self.label = label
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__contact_method__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__ContactMethod>) {
        id = c.pointee.id
        userID = c.pointee.user_id
        type = CRead.string(c.pointee.type)
        address = CRead.string(c.pointee.address)
        label = CRead.string(c.pointee.label)
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__ContactMethod>, arena: CArena) {
        c.pointee.id = id
        c.pointee.user_id = userID
        c.pointee.type = arena.string(type)
        c.pointee.address = arena.string(address)
        c.pointee.label = arena.string(label)
    }
}

public struct NotificationRuleMessage: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var userID: UInt64
    public var contactMethodID: UInt64
    public var startDelaySeconds: UInt32
    public var urgency: Urgency?
    public init(id: UInt64 = 0, userID: UInt64, contactMethodID: UInt64, startDelaySeconds: UInt32, urgency: Urgency?) {
        self.id = id
        self.userID = userID
        self.contactMethodID = contactMethodID
        self.startDelaySeconds = startDelaySeconds
        self.urgency = urgency
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__notification_rule__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__NotificationRule>) throws(WireError) {
        id = c.pointee.id
        userID = c.pointee.user_id
        contactMethodID = c.pointee.contact_method_id
        startDelaySeconds = c.pointee.start_delay_seconds
        urgency = try WireEnum.decode(c.pointee.urgency.rawValue, field: "urgency")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__NotificationRule>, arena: CArena) {
        c.pointee.id = id
        c.pointee.user_id = userID
        c.pointee.contact_method_id = contactMethodID
        c.pointee.start_delay_seconds = startDelaySeconds
        c.pointee.urgency = Klaxon__Incident__V1__Urgency(rawValue: WireEnum.encode(urgency))
    }
}

public struct UserMessage: Sendable, Equatable, CBridged {
    public var id: UInt64
    public var name: String
    public var email: String
    public var timeZone: String
    public var role: String
    public var contactMethods: [ContactMethodMessage]
    public var notificationRules: [NotificationRuleMessage]
    public init(
        id: UInt64 = 0, name: String, email: String, timeZone: String = "", role: String = "",
        contactMethods: [ContactMethodMessage] = [], notificationRules: [NotificationRuleMessage] = []
    ) {
        self.id = id
        self.name = name
        self.email = email
        self.timeZone = timeZone
        self.role = role
        self.contactMethods = contactMethods
        self.notificationRules = notificationRules
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__user__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__User>) throws(WireError) {
        id = c.pointee.id
        name = CRead.string(c.pointee.name)
        email = CRead.string(c.pointee.email)
        timeZone = CRead.string(c.pointee.time_zone)
        role = CRead.string(c.pointee.role)
        contactMethods = try CRead.messages(c.pointee.n_contact_methods, c.pointee.contact_methods, field: "contact_methods")
        notificationRules = try CRead.messages(c.pointee.n_notification_rules, c.pointee.notification_rules, field: "notification_rules")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__User>, arena: CArena) {
        c.pointee.id = id
        c.pointee.name = arena.string(name)
        c.pointee.email = arena.string(email)
        c.pointee.time_zone = arena.string(timeZone)
        c.pointee.role = arena.string(role)
        (c.pointee.n_contact_methods, c.pointee.contact_methods) = arena.messages(contactMethods)
        (c.pointee.n_notification_rules, c.pointee.notification_rules) = arena.messages(notificationRules)
    }
}

public struct IDRequest: Sendable, Equatable, CBridged {
    public var id: UInt64
    public init(id: UInt64) { self.id = id }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__id_request__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__IdRequest>) { id = c.pointee.id }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__IdRequest>, arena: CArena) { c.pointee.id = id }
}

public struct UserListMessage: Sendable, Equatable, CBridged {
    public var users: [UserMessage]
    public init(users: [UserMessage]) { self.users = users }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__user_list__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__UserList>) throws(WireError) {
        users = try CRead.messages(c.pointee.n_users, c.pointee.users, field: "users")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__UserList>, arena: CArena) {
        (c.pointee.n_users, c.pointee.users) = arena.messages(users)
    }
}

public struct NotificationMessage: Sendable, Equatable, CBridged {
    public var id: String
    public var userID: UInt64
    public var ruleID: UInt64
    public var channel: String
    public var address: String
    public var status: String
    public var attempts: UInt32
    public var minuteZero: Bool
    public var reason: NotifyReason?
    public var dueAtMs: Int64
    public var finishedAtMs: Int64
    public var lastError: String
    public init(
        id: String, userID: UInt64, ruleID: UInt64, channel: String, address: String, status: String, attempts: UInt32,
        minuteZero: Bool, reason: NotifyReason?, dueAtMs: Int64, finishedAtMs: Int64, lastError: String
    ) {
        self.id = id
        self.userID = userID
        self.ruleID = ruleID
        self.channel = channel
        self.address = address
        self.status = status
        self.attempts = attempts
        self.minuteZero = minuteZero
        self.reason = reason
        self.dueAtMs = dueAtMs
        self.finishedAtMs = finishedAtMs
        self.lastError = lastError
    }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__notification__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__Notification>) throws(WireError) {
        id = CRead.string(c.pointee.id)
        userID = c.pointee.user_id
        ruleID = c.pointee.rule_id
        channel = CRead.string(c.pointee.channel)
        address = CRead.string(c.pointee.address)
        status = CRead.string(c.pointee.status)
        attempts = c.pointee.attempts
        minuteZero = c.pointee.minute_zero != 0
        reason = try WireEnum.decode(c.pointee.reason.rawValue, field: "reason")
        dueAtMs = c.pointee.due_at_ms
        finishedAtMs = c.pointee.finished_at_ms
        lastError = CRead.string(c.pointee.last_error)
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__Notification>, arena: CArena) {
        c.pointee.id = arena.string(id)
        c.pointee.user_id = userID
        c.pointee.rule_id = ruleID
        c.pointee.channel = arena.string(channel)
        c.pointee.address = arena.string(address)
        c.pointee.status = arena.string(status)
        c.pointee.attempts = attempts
        c.pointee.minute_zero = minuteZero ? 1 : 0
        c.pointee.reason = Klaxon__Notifier__V1__NotifyReason(rawValue: WireEnum.encode(reason))
        c.pointee.due_at_ms = dueAtMs
        c.pointee.finished_at_ms = finishedAtMs
        c.pointee.last_error = arena.string(lastError)
    }
}

public struct NotificationListMessage: Sendable, Equatable, CBridged {
    public var notifications: [NotificationMessage]
    public init(notifications: [NotificationMessage]) { self.notifications = notifications }
    nonisolated(unsafe) static let descriptor = descriptorOf { klaxon__notifier__v1__notification_list__init($0) }
    init(c: UnsafePointer<Klaxon__Notifier__V1__NotificationList>) throws(WireError) {
        notifications = try CRead.messages(c.pointee.n_notifications, c.pointee.notifications, field: "notifications")
    }
    func fill(_ c: UnsafeMutablePointer<Klaxon__Notifier__V1__NotificationList>, arena: CArena) {
        (c.pointee.n_notifications, c.pointee.notifications) = arena.messages(notifications)
    }
}
