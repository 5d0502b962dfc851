// The official @anthropic-ai/sdk against the gateway's /v1/messages: a base64 image read from a
// file, the messages.stream helper, a tool round trip, a PDF document block, count_tokens and
// typed errors. Prints one JSON object the Python test asserts on.
import { readFileSync } from "node:fs";
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({ baseURL: process.env.APERTURE_URL, apiKey: "unused", maxRetries: 0 });
const image = readFileSync(process.env.APERTURE_IMAGE_FILE).toString("base64");
const pdf = readFileSync(process.env.APERTURE_PDF_FILE).toString("base64");
const imageBlock = { type: "image", source: { type: "base64", media_type: "image/jpeg", data: image } };
const text = (message) => message.content.filter((b) => b.type === "text").map((b) => b.text).join("");

const created = await client.messages.create({
  model: "claude-vision",
  max_tokens: 300,
  system: "Be brief.",
  messages: [{ role: "user", content: [imageBlock, { type: "text", text: "Describe this image." }] }],
});

const stream = client.messages.stream({
  model: "demo-vision",
  max_tokens: 300,
  messages: [{ role: "user", content: [imageBlock, { type: "text", text: "Stream it." }] }],
});
let streamedText = "";
const kinds = [];
stream.on("text", (delta) => { streamedText += delta; });
stream.on("streamEvent", (event) => { kinds.push(event.type); });
const streamed = await stream.finalMessage();

const tools = [{
  name: "describe",
  description: "Describe a picture",
  input_schema: { type: "object", properties: { text: { type: "string" } } },
}];
const question = { role: "user", content: "Use the tool." };
const call = await client.messages.create({
  model: "claude-recorded",
  max_tokens: 300,
  tools,
  tool_choice: { type: "tool", name: "describe" },
  messages: [question],
});
const use = call.content.find((b) => b.type === "tool_use");
const answered = await client.messages.create({
  model: "claude-recorded",
  max_tokens: 300,
  tools,
  messages: [
    question,
    { role: "assistant", content: call.content },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: use.id, content: "a blue square" },
        { type: "text", text: "What did the tool say?" },
      ],
    },
  ],
});

// The stream helper with a tool: its input arrives as JSON deltas.
const toolStream = client.messages.stream({
  model: "demo-vision",
  max_tokens: 300,
  tools,
  tool_choice: { type: "any" },
  messages: [question],
});
let inputJson = "";
toolStream.on("inputJson", (delta) => { inputJson += delta; });
const streamedCall = await toolStream.finalMessage();

// Structured output (output_config.format) with the SDK's parse helper, on two kinds.
const schema = {
  type: "object",
  properties: { images: { type: "integer" }, asked: { type: "string" } },
  required: ["images", "asked"],
  additionalProperties: false,
};
const parsed = {};
for (const model of ["claude-vision", "demo-vision"]) {
  const answer = await client.messages.parse({
    model,
    max_tokens: 300,
    output_config: { format: { type: "json_schema", schema } },
    messages: [{ role: "user", content: "Count the images." }],
  });
  parsed[model] = answer.parsed_output;
}

const documentBlock = {
  type: "document",
  source: { type: "base64", media_type: "application/pdf", data: pdf },
  title: "report.pdf",
};
const documents = {};
for (const model of ["claude-recorded", "demo-vision"]) {
  const answer = await client.messages.create({
    model,
    max_tokens: 300,
    messages: [{ role: "user", content: [documentBlock, { type: "text", text: "Summarise the report." }] }],
  });
  documents[model] = { text: text(answer), input_tokens: answer.usage.input_tokens };
}

// The same prompt as `created`: Anthropic's count for it is what that answer's usage said.
const counted = await client.messages.countTokens({
  model: "claude-vision",
  system: "Be brief.",
  messages: [{ role: "user", content: [imageBlock, { type: "text", text: "Describe this image." }] }],
});

const errors = {};
for (const [name, request] of Object.entries({
  // A text-only model and an image: refused before any call.
  unsupported: { model: "demo-text", content: [imageBlock, { type: "text", text: "x" }] },
  undecodable: { model: "demo-vision", content: [{ ...imageBlock, source: { ...imageBlock.source, data: "!!" } }] },
  unknown_model: { model: "no-such-model", content: "x" },
})) {
  try {
    await client.messages.create({ model: request.model, max_tokens: 10, messages: [{ role: "user", content: request.content }] });
    errors[name] = null;
  } catch (error) {
    errors[name] = {
      class: error.constructor.name,
      isBadRequest: error instanceof Anthropic.BadRequestError,
      isNotFound: error instanceof Anthropic.NotFoundError,
      status: error.status,
      type: error.type,
      body: error.error,
    };
  }
}

console.log(JSON.stringify({
  created: { text: text(created), stop: created.stop_reason, usage: created.usage, model: created.model },
  streamed: { text: text(streamed), deltas: streamedText, first: kinds[0], last: kinds.at(-1), usage: streamed.usage, stop: streamed.stop_reason },
  tool: { stop: call.stop_reason, id: use.id, name: use.name, input: use.input, answer: text(answered) },
  streamedTool: { json: inputJson, stop: streamedCall.stop_reason, content: streamedCall.content },
  parsed,
  documents,
  counted,
  errors,
}));
