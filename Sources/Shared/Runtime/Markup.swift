/// Text inside HTML or XML (the incident page, email's HTML part, TwiML): the five characters
/// that could end an element or an attribute, escaped.
public enum Markup {
    public static func escape(_ text: some StringProtocol) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
