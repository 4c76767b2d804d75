// Verifies webhook requests with npm's `standardwebhooks`, unmodified: reads
// {"secrets": [...], "requests": [{"headers": {...}, "body_b64": "..."}]} on stdin and prints, per request,
// per secret, whether it verified (and the parsed payload's type when it did).
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { secrets, requests } = JSON.parse(input);
  const results = requests.map((request) => secrets.map((secret) => {
    try {
      const payload = new Webhook(secret).verify(Buffer.from(request.body_b64, "base64"), request.headers);
      return { verified: true, type: payload.type };
    } catch (error) {
      return { verified: false, error: String(error.message || error) };
    }
  }));
  console.log(JSON.stringify(results));
});
