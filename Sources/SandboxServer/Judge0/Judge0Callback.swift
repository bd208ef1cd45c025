import Foundation
import JobStore

/// Judge0's `callback_url` through the service's one webhook mechanism (durable in the
/// JobStore, retried, signed when a secret is set): a job submitted through the Judge0 API is
/// reported the way Judge0 reports it — a `PUT` of the eight default fields, always base64
/// (Judge0 issue #480) — and every other job keeps the native `POST` of its view.
enum Judge0Callback {
    /// The body to deliver for a job: Judge0's for a Judge0 submission, else the native view.
    static func payload(for view: JobView) -> Data {
        guard Judge0SubmissionSettings(metadata: view.metadata) != nil,
              let rendered = try? Judge0SubmissionView(view: view, request: nil, settings: Judge0SubmissionSettings(metadata: view.metadata),
                                                      language: nil)
                  .render(fields: Judge0SubmissionView.defaultFields, base64Encoded: true)
        else { return APIJSON.encode(view) }
        return Data(rendered.bytes)
    }

    /// The HTTP method of a job's webhook: `PUT` for Judge0 submissions (as Judge0 sends it).
    static func httpMethod(for record: JobRecord?) -> String {
        guard let record, let request = StoredJob.request(of: record),
              Judge0SubmissionSettings(metadata: request.metadata) != nil
        else { return "POST" }
        return "PUT"
    }
}
