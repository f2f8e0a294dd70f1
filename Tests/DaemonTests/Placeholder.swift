import XCTest
@testable import squtund
