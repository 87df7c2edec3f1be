import Foundation
import KlaxonDomain
import KlaxonTestSupport
import Shared
import Testing

/// The incident page in a real browser (issue 25, point 2): headless Chromium (Debian's
/// `chromium` and `chromium-driver`, driven by Selenium from PyPI) opens the one-tap link from a
/// page's JSON at a phone's width (360 px), the page fits it, a tap on Acknowledge acknowledges
/// as that user, and a tampered link shows the error page. The screenshot it takes is saved
/// (`$KLAXON_SCREENSHOT_DIR/incident-page.png` when set: docs/incident-page.png was made so).
@Suite struct IncidentPageBrowserTests {
    static let script = #"""
    import sys
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    link, tampered, shot = sys.argv[1], sys.argv[2], sys.argv[3]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"]:
        options.add_argument(argument)
    # A phone: 360 × 800 CSS pixels, touch, mobile viewport rules (a desktop window cannot be that narrow).
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 360, "height": 800, "pixelRatio": 1.0, "touch": True}})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(link)
        print("title:", driver.title)
        print("viewport:", driver.execute_script("return window.innerWidth"))
        print("content-width:", driver.execute_script("return document.documentElement.scrollWidth"))
        driver.save_screenshot(shot)
        driver.find_element(By.CSS_SELECTOR, "button.ack").click()
        # The form posts, Klaxon answers 303, the browser loads the page again: wait for it.
        notice = WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
        print("notice:", notice.text)
        print("status:", driver.find_element(By.CSS_SELECTOR, ".status").text)
        driver.get(tampered)
        print("tampered:", driver.find_element(By.CSS_SELECTOR, "h1").text, "|", driver.find_element(By.CSS_SELECTOR, ".problem").text)
    finally:
        driver.quit()
    """#

    /// Width and height from a PNG's IHDR.
    static func pngSize(_ data: Data) -> (width: Int, height: Int)? {
        let bytes = [UInt8](data)
        guard bytes.count > 24, bytes[1...3] == [0x50, 0x4E, 0x47] else { return nil }
        func be32(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (be32(16), be32(20))
    }

    @Test func aPhoneOpensTheLinkAndAcknowledgesWithOneTap() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
                     "Debian's chromium and chromium-driver are needed (scripts/test installs them)")
        let pipeline = try await OneTapLinkTests.pipeline()
        let service = try await pipeline.seed(users: ["Alice", "Bob"])
        let ingest = pipeline.client(.ingest, token: nil)
        let created: EventResult = try await ingest.call(
            Ingest.SendEvent, Pipeline.trigger(service.routingKey, summary: "Checkout error rate 37% on eu-west-1 — payments failing"))
        let pages = await OneTapLinkTests.links(pipeline, incident: created.incidentID, users: 2)
        let alice = try #require(pages["Alice"]), bob = try #require(pages["Bob"])
        let link = try #require(alice.incident.htmlURL)
        let tampered = link.replacingOccurrences(of: "/i/v1.\(alice.user.id).", with: "/i/v1.\(bob.user.id).")
        let directory = ProcessInfo.processInfo.environment["KLAXON_SCREENSHOT_DIR"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory
        let shot = directory.appendingPathComponent(directory == FileManager.default.temporaryDirectory ? "incident-page-\(UUID().uuidString).png" : "incident-page.png")
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("incident-page-\(UUID().uuidString).py")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        let (status, output) = try await offCooperativePool {
            try ThirdPartyClientTests.runBlocking("python3", [script.path, link, tampered, shot.path])
        }
        #expect(status == 0, "\(output)")
        #expect(output.contains("title: #") && output.contains("Checkout error rate 37%"), "\(output)")
        #expect(output.contains("viewport: 360"), "the browser was not phone-sized: \(output)")
        #expect(output.contains("content-width: 360"), "the page is wider than a 360-px phone screen: \(output)")
        #expect(output.contains("notice: Acknowledged by you.") && output.contains("status: acknowledged"), "\(output)")
        #expect(output.contains("tampered: This link cannot be used | ") && output.contains("signature does not match"), "\(output)")
        #expect(try await OneTapLinkTests.acknowledgers(pipeline, created.incidentID) == ["Alice"], "the tap did not acknowledge as Alice (only)")
        let picture = try Data(contentsOf: shot)
        let size = try #require(Self.pngSize(picture), "the screenshot is not a PNG")
        print("IncidentPageBrowserTests: screenshot \(shot.path), \(size.width)×\(size.height), \(picture.count) bytes")
        #expect(size.width == 360 && size.height >= 600, "screenshot \(size)")
        #expect(picture.count > 10_000, "the screenshot is nearly empty (\(picture.count) bytes)")
        await ingest.close()
        await pipeline.shutdown()
    }
}
