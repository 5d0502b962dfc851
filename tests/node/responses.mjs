// The official openai Node SDK against the gateway: responses.create, the responses.stream
// helper and previous_response_id. Prints one JSON object the Python test asserts on.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.APERTURE_URL, apiKey: "unused", maxRetries: 0 });
const model = process.env.APERTURE_MODEL;
const image = process.env.APERTURE_IMAGE;

const created = await client.responses.create({
  model,
  instructions: "Be brief.",
  input: [{
    role: "user",
    content: [
      { type: "input_text", text: "Describe this image." },
      { type: "input_image", image_url: image, detail: "auto" },
    ],
  }],
  max_output_tokens: 200,
});

const stream = client.responses.stream({ model, input: "Say hello." });
const types = [];
let deltas = "";
for await (const event of stream) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") deltas += event.delta;
}
const streamed = await stream.finalResponse();

const continued = await client.responses.create({
  model,
  previous_response_id: created.id,
  input: "And again?",
});

let missing = null;
try {
  await client.responses.create({ model, previous_response_id: "resp_none", input: "x" });
} catch (error) {
  missing = { status: error.status, code: error.code, param: error.param };
}

console.log(JSON.stringify({
  created: { id: created.id, text: created.output_text, status: created.status },
  streamed: { text: streamed.output_text, deltas, first: types[0], last: types.at(-1) },
  continued: continued.output_text,
  missing,
}));
