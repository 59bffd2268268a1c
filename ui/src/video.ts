// Video from the frame socket into a canvas, drawn on the next animation frame: with a GPU, a
// WebGL YUV shader (the planes are uploaded as three one-byte textures; no conversion in
// JavaScript); without one, converted to RGBA in JavaScript and put on a 2D canvas, since
// WebGL there is Mesa's llvmpipe on the CPU, which loads LLVM into the web process (about 31
// MB) to compile the shader. The backend says which (`AppInfo::video_drawing`).
// The page tells the socket how big the canvas is shown, and gets frames no larger.
// Flow control: the page holds CREDITS; the server sends a frame only against a credit, and
// the page returns it with `drawn <seq>` once the frame is on screen (or `credit 1` when a
// newer frame replaced it before it was drawn).

import { type Planes, parseFrame } from "./frame";
import { i420ToRgba } from "./yuv";

/** How frames reach the screen: see the top of this file. */
export type VideoDrawing = "webgl" | "canvas2d";

interface Renderer {
  draw(frame: Planes): void;
}

const CREDITS = 2;

const VERTEX = `
attribute vec2 pos;
varying vec2 uv;
void main() {
  uv = vec2((pos.x + 1.0) * 0.5, (1.0 - pos.y) * 0.5);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;

// BT.601, limited range (what VP8 and H.264 decoders give).
const FRAGMENT = `
precision mediump float;
varying vec2 uv;
uniform sampler2D ty, tu, tv;
void main() {
  float y = 1.1643 * (texture2D(ty, uv).r - 0.0625);
  float u = texture2D(tu, uv).r - 0.5;
  float v = texture2D(tv, uv).r - 0.5;
  gl_FragColor = vec4(y + 1.5958 * v, y - 0.39173 * u - 0.8129 * v, y + 2.017 * u, 1.0);
}`;

class CanvasRenderer implements Renderer {
  private context: CanvasRenderingContext2D;
  private image: ImageData | null = null;

  constructor(private canvas: HTMLCanvasElement) {
    const context = canvas.getContext("2d", { alpha: false });
    if (!context) throw new Error("a 2D canvas is not available");
    this.context = context;
  }

  draw(frame: Planes): void {
    const { width, height } = frame.header;
    if (this.image?.width !== width || this.image?.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.image = this.context.createImageData(width, height);
    }
    i420ToRgba(frame.y, frame.u, frame.v, width, height, this.image.data);
    this.context.putImageData(this.image, 0, 0);
  }
}

class YuvRenderer implements Renderer {
  private gl: WebGLRenderingContext;
  private textures: WebGLTexture[] = [];
  private size = [0, 0];

  constructor(canvas: HTMLCanvasElement) {
    const gl = canvas.getContext("webgl", { alpha: false, antialias: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("WebGL is not available");
    this.gl = gl;
    const program = gl.createProgram()!;
    for (const [type, source] of [
      [gl.VERTEX_SHADER, VERTEX],
      [gl.FRAGMENT_SHADER, FRAGMENT],
    ] as const) {
      const shader = gl.createShader(type)!;
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
        throw new Error(`shader: ${gl.getShaderInfoLog(shader)}`);
      }
      gl.attachShader(program, shader);
    }
    gl.linkProgram(program);
    gl.useProgram(program);
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const pos = gl.getAttribLocation(program, "pos");
    gl.enableVertexAttribArray(pos);
    gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    ["ty", "tu", "tv"].forEach((name, i) => {
      const texture = gl.createTexture()!;
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, texture);
      for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.LINEAR);
      gl.uniform1i(gl.getUniformLocation(program, name), i);
      this.textures.push(texture);
    });
  }

  draw(frame: Planes): void {
    const { gl } = this;
    const { width, height } = frame.header;
    const canvas = gl.canvas as HTMLCanvasElement;
    const resized = this.size[0] !== width || this.size[1] !== height;
    if (resized) {
      canvas.width = width;
      canvas.height = height;
      gl.viewport(0, 0, width, height);
      this.size = [width, height];
    }
    const planes = [frame.y, frame.u, frame.v];
    planes.forEach((plane, i) => {
      const w = i === 0 ? width : width / 2;
      const h = i === 0 ? height : height / 2;
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[i]);
      if (resized) {
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, plane);
      } else {
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.LUMINANCE, gl.UNSIGNED_BYTE, plane);
      }
    });
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}

/** One stream of the frame socket drawn into one canvas. */
export class VideoView {
  private socket: WebSocket | null = null;
  private pending: Planes | null = null;
  private scheduled = false;
  private renderer: Renderer;
  private closed = false;
  private retry = 250;
  /** Frames drawn, and when the last one was. */
  drawn = 0;
  lastDrawnAt = 0;
  size: [number, number] = [0, 0];

  constructor(
    private canvas: HTMLCanvasElement,
    private url: string,
    private onProblem: (text: string) => void,
    drawing: VideoDrawing,
  ) {
    this.renderer = drawing === "webgl" ? new YuvRenderer(canvas) : new CanvasRenderer(canvas);
    // Frames come no larger than the canvas is shown: say its size now and when it changes.
    this.resize = new ResizeObserver(() => this.sendSize());
    this.resize.observe(canvas);
    this.connect();
  }

  private resize: ResizeObserver;

  /** The canvas's box in device pixels (2x2 while hidden: nothing needs more). */
  private box(): [number, number] {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const side = (n: number) => Math.max(2, Math.round(n * dpr));
    return rect.width && rect.height ? [side(rect.width), side(rect.height)] : [2, 2];
  }

  private sendSize(): void {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    const [w, h] = this.box();
    this.socket.send(`size ${w} ${h}`);
  }

  private connect(): void {
    if (this.closed) return;
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      this.retry = 250;
      this.sendSize();
      socket.send(`credit ${CREDITS}`);
    };
    socket.onmessage = (message) => {
      let frame: Planes;
      try {
        frame = parseFrame(message.data as ArrayBuffer);
      } catch (e) {
        this.onProblem(`video: ${(e as Error).message}`);
        socket.send("credit 1");
        return;
      }
      if (this.pending) socket.send("credit 1"); // replaced before it was drawn
      this.pending = frame;
      if (!this.scheduled) {
        this.scheduled = true;
        requestAnimationFrame(() => this.paint(socket));
      }
    };
    socket.onclose = () => {
      if (this.closed) return;
      // The socket lives as long as the app; a close is a hiccup: try again, backing off.
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 4000);
    };
    this.socket = socket;
  }

  private paint(socket: WebSocket): void {
    this.scheduled = false;
    const frame = this.pending;
    this.pending = null;
    if (!frame) return;
    this.renderer.draw(frame);
    this.drawn += 1;
    this.lastDrawnAt = performance.now();
    this.size = [frame.header.width, frame.header.height];
    this.canvas.dataset.drawn = String(this.drawn);
    if (socket.readyState === WebSocket.OPEN) socket.send(`drawn ${frame.header.seq}`);
  }

  /** Whether a frame was drawn in the last `ms`. */
  live(ms: number): boolean {
    return this.drawn > 0 && performance.now() - this.lastDrawnAt < ms;
  }

  close(): void {
    this.closed = true;
    this.resize.disconnect();
    this.socket?.close();
  }
}
