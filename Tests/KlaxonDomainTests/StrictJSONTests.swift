import KlaxonDomain
import Testing

/// RFC 8259 syntax, as PagerDuty applies it: what it refuses is refused here (Foundation's own
/// parser takes trailing commas).
@Suite struct StrictJSONTests {
    @Test(arguments: [
        #"{}"#, #"[]"#, #" {"a": 1} "#, #"{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":-0.5e+3,"e":true,"f":false}"#, #""text""#, "0", "-12",
        "{\"s\":\"é 📟\"}",
    ])
    func validJSONPasses(_ text: String) {
        #expect(StrictJSON.problem(Array(text.utf8)) == nil, "\(text)")
    }

    @Test(arguments: [
        (#"{"a":1,}"#, "trailing comma in an object at byte 7"),
        (#"{"a":[1,2,]}"#, "trailing comma in an array at byte 10"),
        (#"{a:1}"#, "expected a member name in double quotes at byte 1"),
        (#"{"a":1} x"#, "unexpected text after the value at byte 8"),
        (#"{"a":01}"#, "expected ',' or '}' in an object at byte 6"),
        (#"{"a":"x"#, "unterminated string at byte 7"),
        (#"{"a":"\q"}"#, "invalid escape in a string at byte 7"),
        (#"{"a":NaN}"#, "unexpected character at byte 5"),
        ("", "unexpected end of the body at byte 0"),
        ("{\"a\":\"\u{1}\"}", "control character in a string (escape it) at byte 6"),
    ])
    func whatPagerDutyRefusesIsRefused(_ text: String, _ problem: String) {
        #expect(StrictJSON.problem(Array(text.utf8)) == problem, "\(text)")
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(StrictJSON.problem(Array(deep.utf8))?.hasPrefix("nested deeper than 64") == true)
    }
}
