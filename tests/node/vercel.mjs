// The Vercel AI SDK against the gateway: generateText and streamText with openai(model) (the
// Responses API, the SDK's default), openai.chat(model) (Chat Completions) and
// createAnthropic (Messages), each with an image part. Prints one JSON object.
import { readFileSync } from "node:fs";
import {
  APICallError, generateObject, generateText, jsonSchema, stepCountIs, streamText, tool,
} from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";

// The SDK's warnings (a setting a model ignored, say) are collected and asserted on, not logged.
const warnings = [];
globalThis.AI_SDK_LOG_WARNINGS = ({ warnings: some, provider }) => {
  for (const warning of some) warnings.push({ provider, ...warning });
};

const baseURL = process.env.APERTURE_URL;
const image = readFileSync(process.env.APERTURE_IMAGE_FILE);
const pdf = readFileSync(process.env.APERTURE_PDF_FILE);
const openai = createOpenAI({ baseURL, apiKey: "unused" });
const anthropic = createAnthropic({ baseURL, apiKey: "unused" });
// The same provider with a text-only model: an image is refused, as the SDK's APICallError.
const textOnly = (name) => ({
  model: name === "anthropic" ? anthropic("demo-text")
    : name === "chat" ? openai.chat("demo-text") : openai("demo-text"),
});
const models = {
  responses: openai(process.env.APERTURE_MODEL),
  chat: openai.chat(process.env.APERTURE_MODEL),
  anthropic: anthropic(process.env.APERTURE_CLAUDE),
};
const asking = (text) => [{
  role: "user",
  content: [{ type: "text", text }, { type: "image", image, mediaType: "image/jpeg" }],
}];
const common = { maxRetries: 0, maxOutputTokens: 300 };
const calls = [];
const tools = {
  weather: tool({
    description: "The weather in a city",
    inputSchema: jsonSchema({ type: "object", properties: { text: { type: "string" } } }),
    execute: async (input) => { calls.push(input); return "sunny"; },
  }),
};

const out = {};
for (const [name, model] of Object.entries(models)) {
  const generated = await generateText({
    model, system: "Be brief.", messages: asking("Describe this image."), ...common,
  });
  // The next turn as apps build it: the answer's own messages, then a new question. With
  // openai(model) the SDK names the kept answer's item (item_reference) instead of its text.
  const followed = await generateText({
    model,
    messages: [...asking("Describe this image."), ...generated.response.messages,
      { role: "user", content: "And again?" }],
    ...common,
  });
  const streamed = streamText({ model, messages: asking("Stream it."), ...common });
  let deltas = "";
  for await (const delta of streamed.textStream) deltas += delta;
  // A tool call the SDK runs, then a second step with its result, answered in text.
  const stepped = await generateText({
    model,
    prompt: "What is the weather?",
    tools,
    stopWhen: stepCountIs(3),
    prepareStep: ({ stepNumber }) => ({
      toolChoice: stepNumber === 0 ? { type: "tool", toolName: "weather" } : "none",
    }),
    ...common,
  });
  // A PDF file part: input_file, a file part or a document block by API.
  const summarised = await generateText({
    model,
    messages: [{
      role: "user",
      content: [
        { type: "text", text: "Summarise." },
        { type: "file", data: pdf, mediaType: "application/pdf", filename: "report.pdf" },
      ],
    }],
    ...common,
  });
  // Structured output: text.format, response_format and output_config.format by API.
  const { object } = await generateObject({
    model,
    prompt: "Count the images.",
    schema: jsonSchema({
      type: "object",
      properties: { images: { type: "integer" }, asked: { type: "string" } },
      required: ["images", "asked"],
      additionalProperties: false,
    }),
    ...common,
  });
  let error = null;
  try {
    await generateText({ ...common, model, messages: asking("x"), ...textOnly(name) });
  } catch (caught) {
    error = {
      isAPICallError: APICallError.isInstance(caught),
      status: caught.statusCode,
      body: JSON.parse(caught.responseBody),
    };
  }
  out[name] = {
    generated: {
      text: generated.text,
      finish: generated.finishReason,
      usage: { input: generated.usage.inputTokens, output: generated.usage.outputTokens },
    },
    followed: followed.text,
    streamed: {
      text: await streamed.text,
      deltas,
      finish: await streamed.finishReason,
      usage: (await streamed.usage).outputTokens,
    },
    tools: {
      steps: stepped.steps.map((step) => step.finishReason),
      calls: stepped.steps.flatMap((step) => step.toolCalls.map((c) => [c.toolName, c.input])),
      results: stepped.steps.flatMap((step) => step.toolResults.map((r) => r.output)),
      text: stepped.text,
    },
    object,
    document: summarised.text,
    error,
  };
}
console.log(JSON.stringify({ ...out, calls, warnings }));
